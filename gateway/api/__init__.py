"""The gateway's HTTP surface beyond single messages: vendor-export ingest, metadata, OpenAPI."""

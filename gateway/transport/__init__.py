"""Transport: mutual-TLS serving, the message intake, and the outbound client."""

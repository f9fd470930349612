// Validates an OpenAPI document with @apidevtools/swagger-parser (the OpenAPI 3.1 schema,
// plus its checks on references, parameters and operation ids). Usage:
//   node validate-openapi.mjs openapi.json
import SwaggerParser from '@apidevtools/swagger-parser';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate-openapi.mjs <openapi.json>');
  process.exit(2);
}
try {
  const api = await SwaggerParser.validate(file);
  console.log(`valid: OpenAPI ${api.openapi}, ${Object.keys(api.paths).length} paths`);
} catch (e) {
  console.error(e.message);
  process.exit(1);
}

// Which validator the form checks with. The schema Quire ships is checked in the browser by
// AJV, with validators compiled when the web app is built (vite.config.ts): the page's
// content security policy forbids compiling code in the browser. A schema derived from an
// instance's own Armbian checkout is checked by the server alone (the same rules, answered
// by `POST /api/v1/board-configs/validate`); the form still narrows choices by its rules.
import { createPrecompiledValidator } from '@rjsf/validator-ajv8';
import type { RJSFSchema, ValidatorType } from '@rjsf/utils';
import compiled, { shippedSchemaId } from 'virtual:armbian-validators';
import type { BuildSchema } from './model';

type Json = Record<string, unknown>;

/** Whether `data` satisfies a rule's `if`: the fields it names, with their `const` or `enum`,
 * and the ones it requires. That is every condition Quire's schemas hold. */
export function satisfies(schema: Json, data: unknown): boolean {
  const fields = (data ?? {}) as Json;
  const required = (schema.required as string[] | undefined) ?? [];
  if (!required.every((k) => fields[k] !== undefined)) return false;
  for (const [k, s] of Object.entries((schema.properties as Record<string, Json> | undefined) ?? {})) {
    const v = fields[k];
    if (v === undefined) continue;
    if ('const' in s && s.const !== v) return false;
    if (Array.isArray(s.enum) && !s.enum.includes(v)) return false;
  }
  return true;
}

const serverChecked: ValidatorType = {
  validateFormData: () => ({ errors: [], errorSchema: {} }),
  isValid: (schema, data) => satisfies(schema as Json, data),
  rawValidation: () => ({ errors: [] }),
};

/** The validator for `schema`, and whether it checks in the browser. */
export function validatorFor(schema: BuildSchema): { validator: ValidatorType; inBrowser: boolean } {
  if (schema.$id && schema.$id === shippedSchemaId) {
    const fns = compiled as unknown as Parameters<typeof createPrecompiledValidator>[0];
    return { validator: createPrecompiledValidator(fns, schema as unknown as RJSFSchema), inBrowser: true };
  }
  return { validator: serverChecked, inBrowser: false };
}

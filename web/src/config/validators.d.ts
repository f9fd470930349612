// The validators vite.config.ts compiles from the shipped schema: one function per schema
// hash, and the `$id` of the schema they were compiled from.
declare module 'virtual:armbian-validators' {
  const validators: Record<string, unknown>;
  export default validators;
  export const shippedSchemaId: string;
}

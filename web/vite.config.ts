import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vitest/config';
import react from '@vitejs/plugin-react';

// `npm run dev` serves the app with hot reload and sends the API and /collab to a
// `quire serve` on its default address.
const quire = process.env.QUIRE_URL ?? 'http://127.0.0.1:7420';

/** `virtual:armbian-validators`: AJV's validators of the Armbian build schema Quire ships
 * (crates/quire-armbian/schemas/), compiled here, at build time, because the page's content
 * security policy forbids compiling code in the browser. */
function armbianValidators(): Plugin {
  const id = 'virtual:armbian-validators';
  const dir = fileURLToPath(new URL('../crates/quire-armbian/schemas/', import.meta.url));
  return {
    name: 'quire-armbian-validators',
    resolveId: (source) => (source === id ? `\0${id}` : undefined),
    async load(source) {
      if (source !== `\0${id}`) return undefined;
      const file = readdirSync(dir).find((f) => f.endsWith('.json'));
      if (!file) throw new Error(`no schema in ${dir}`);
      this.addWatchFile(dir + file);
      const schema = JSON.parse(readFileSync(dir + file, 'utf8'));
      const { compileSchemaValidatorsCode } = await import('@rjsf/validator-ajv8/compileSchemaValidators');
      // AJV's module names each validator by the hash of its schema, which only CommonJS takes.
      const code = compileSchemaValidatorsCode(schema, { ajvOptionsOverrides: { code: { lines: false } } });
      if (/\brequire\(/.test(code)) throw new Error('the compiled validators need a runtime module; bundle it');
      return `const exports = {};\n${code}\nexport default exports;\nexport const shippedSchemaId = ${JSON.stringify(schema.$id)};\n`;
    },
  };
}

export default defineConfig({
  plugins: [react(), armbianValidators()],
  build: { sourcemap: false, assetsInlineLimit: 0, chunkSizeWarningLimit: 1000 },
  server: {
    proxy: {
      '/api': quire,
      '/collab': { target: quire, ws: true },
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.{ts,tsx}'],
  },
});

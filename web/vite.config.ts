import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// `npm run dev` serves the app with hot reload and sends the API and /collab to a
// `quire serve` on its default address.
const quire = process.env.QUIRE_URL ?? 'http://127.0.0.1:7420';

export default defineConfig({
  plugins: [react()],
  build: { sourcemap: false, assetsInlineLimit: 0, chunkSizeWarningLimit: 800 },
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

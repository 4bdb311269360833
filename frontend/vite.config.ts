import { writeFileSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineConfig, type Plugin } from 'vitest/config';

// The gateway embeds this directory (//go:embed all:dist); its placeholder `.keep` lets `go build`
// work without npm, so it has to survive `emptyOutDir`.
const outDir = resolve(__dirname, '../gateway-go/ui/dist');

function keepPlaceholder(): Plugin {
  return {
    name: 'lanasr-keep-placeholder',
    apply: 'build',
    closeBundle() {
      mkdirSync(outDir, { recursive: true });
      writeFileSync(resolve(outDir, '.keep'), '');
    },
  };
}

const gateway = process.env.ASR_GATEWAY_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  plugins: [keepPlaceholder()],
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    assetsInlineLimit: 4096,
  },
  server: {
    proxy: { '/api': { target: gateway, changeOrigin: false } },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
});

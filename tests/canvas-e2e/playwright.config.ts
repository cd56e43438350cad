// The original canvas's Playwright configuration (canvas/playwright.config.ts at 624ef4d0), with
// Debian's Chromium instead of a downloaded browser and the staging specs left out (they need the
// hosted control plane). Copied into the exported canvas by scripts/canvas-e2e.
import { defineConfig } from "@playwright/test";

export default defineConfig({
  testDir: "./e2e",
  testIgnore: /staging-/,
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  use: {
    baseURL: "http://localhost:3000",
    headless: true,
    screenshot: "only-on-failure",
    launchOptions: { executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium" },
  },
  projects: [{ name: "chromium", use: { browserName: "chromium" } }],
});

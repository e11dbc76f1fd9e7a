import { defineConfig } from '@playwright/test';
import base from './playwright.config';

// `make screenshots`: the same browser settings as the tests, the screenshot script only.
export default defineConfig({ ...base, testDir: './shots', workers: 1 });

import { expect, Page } from '@playwright/test';

/** Creates an account through the sign-in window's form and waits for the live connection. */
export async function signUpInUi(page: Page, base: string, username: string, password: string) {
  await page.goto(base);
  await page.getByText('New to Messenger? Create an account').click();
  await page.getByLabel('New username').fill(username);
  await page.getByLabel('Choose a password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(`${base}/app`);
  await waitOnline(page);
}

export async function signInInUi(page: Page, base: string, username: string, password: string) {
  await page.goto(base);
  await page.getByLabel('Username', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** The main window's line about the live connection. */
export function linkState(page: Page) {
  return page.getByRole('status', { name: 'Connection' });
}

/** The island is hydrated and its socket is open. */
export async function waitOnline(page: Page) {
  await expect(linkState(page)).toHaveText('Connected');
}

export function conversation(page: Page, title: string) {
  return page.getByRole('region', { name: `Conversation with ${title}` });
}

export async function say(page: Page, title: string, text: string) {
  const box = conversation(page, title).getByLabel(`Message to ${title}`);
  await box.fill(text);
  await box.press('Enter');
}

export async function startChat(page: Page, username: string) {
  await page.getByLabel('Start a conversation with').fill(username);
  await page.getByRole('button', { name: 'Chat', exact: true }).click();
  await expect(conversation(page, username)).toBeVisible();
}

import { Browser, expect, Locator, Page } from '@playwright/test';

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
  return page.getByRole('region', { name: `Conversation with ${title}`, exact: true });
}

export function groupConversation(page: Page, title: string) {
  return page.getByRole('region', { name: `Group conversation with ${title}`, exact: true });
}

export async function say(page: Page, title: string, text: string) {
  await sayIn(conversation(page, title), title, text);
}

/** Sends `text` from a conversation window whose title is `title`. */
export async function sayIn(window: Locator, title: string, text: string) {
  const box = window.getByLabel(`Message to ${title}`);
  await box.fill(text);
  await box.press('Enter');
}

/** Chooses a status from the card's status menu ("Busy", "Appear Offline", ...). */
export async function setStatus(page: Page, label: string) {
  await page.getByRole('button', { name: /^Your status:/ }).click();
  await page.getByRole('menuitemradio', { name: label, exact: true }).click();
  await expect(page.getByRole('button', { name: `Your status: ${label}` })).toBeVisible();
}

/** The status the card's menu shows. */
export function myStatus(page: Page) {
  return page.getByRole('button', { name: /^Your status:/ });
}

/** The search box over the list. */
export function searchBox(page: Page) {
  return page.getByRole('searchbox', { name: /Search contacts/ });
}

/** Opens the conversation with `username` from the search box ("Chat with ..."). */
export async function startChat(page: Page, username: string) {
  await searchBox(page).fill(username);
  await page.getByRole('button', { name: `Chat with ${username}`, exact: true }).click();
  await expect(conversation(page, username)).toBeVisible();
}

/** Sends a contact request from the icon bar's "Add a contact". */
export async function addContactInUi(page: Page, username: string) {
  await page.getByRole('toolbar').getByRole('button', { name: 'Add a contact' }).click();
  await page.getByLabel('Username of the person to add').fill(username);
  await page.getByRole('button', { name: 'Send request' }).click();
}

/** A user's entry in the contact list of `page`. */
export function contactEntry(page: Page, username: string) {
  return page.locator(`.contact-row[data-user="${username}"]`);
}

/** `asker` adds `other` as a contact and `other` accepts; both are online. */
export async function befriendInUi(asker: Page, askerName: string, other: Page, otherName: string) {
  await addContactInUi(asker, otherName);
  await contactEntry(other, askerName).getByRole('button', { name: 'Accept' }).click();
  await expect(contactEntry(asker, otherName)).toHaveAttribute('data-status', 'online');
}

/** Closes the browser contexts a test opened, so their pages stop reconnecting to a server
 * that is gone while the next tests run. */
export async function closeContexts(browser: Browser) {
  await Promise.all(browser.contexts().map((c) => c.close()));
}

// Loads ALTCHA's widget (the bot verification of the sign-in window) and gives it the one
// proof-of-work worker it needs. Its "external" build ships no workers of its own, so that no
// script is made from a string: the page's Content-Security-Policy allows scripts and workers
// from this server only.
import './altcha.js';

globalThis.$altcha.algorithms.set('PBKDF2/SHA-256', () => new Worker('/altcha/pbkdf2.js'));

// The forms that carry the widget come with their buttons disabled (a form sent before the
// widget exists would go without its proof): the widget is defined now, so they may be sent.
await customElements.whenDefined('altcha-widget');
for (const button of document.querySelectorAll('button[data-door-wait]')) {
  button.disabled = false;
}

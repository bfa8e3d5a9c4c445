// cypress-mailpit 2.0.0's commands (read state included) under cy_harness.mjs, against
// smtpmock serve. argv[2]: JSON {url}; prints {step: {ok, value | error}} as JSON.
import { install, run } from "./cy_harness.mjs";

const { url } = JSON.parse(process.argv[2]);
const { cy } = install({ expose: { MAILPIT_URL: url }, config: { defaultCommandTimeout: 4000 } });
await import("cypress-mailpit");

const results = {};
async function step(name, fn) {
  try {
    results[name] = { ok: true, value: await run(fn()) };
  } catch (error) {
    results[name] = { ok: false, error: String(error && error.message ? error.message : error) };
  }
}
const fast = { timeout: 4000, interval: 50 };
const subjects = (result) => ({ count: result.messages_count, subjects: result.messages.map((m) => m.Subject) });

await step("mailpitGetAllMails", () => cy.mailpitGetAllMails().then(subjects));
await step("mailpitGetMail", () => cy.mailpitGetMail());
const all = (await run(cy.mailpitGetAllMails())).messages;
const summaryA = all.find((m) => m.Subject === "Hello Bob");
const messageA = await run(cy.mailpitGetMail(summaryA.ID));
await step("mailpitSearchEmails", () => cy.mailpitSearchEmails("from:carol@example.com").then(subjects));
await step("mailpitGetEmailsBySubject", () => cy.mailpitGetEmailsBySubject("Invoice").then(subjects));
await step("mailpitGetEmailsByTo", () => cy.mailpitGetEmailsByTo("bob@example.org").then(subjects));
await step("mailpitHasEmailsBySearch", () => cy.mailpitHasEmailsBySearch("has:attachment", 0, 50, fast).then(subjects));
await step("mailpitNotHasEmailsBySearch", () => cy.mailpitNotHasEmailsBySearch("subject:nothing-like-this", 0, 50, fast).then(subjects));
await step("mailpitHasEmailsBySubject", () => cy.mailpitHasEmailsBySubject("Hello", 0, 50, fast).then(subjects));
await step("mailpitNotHasEmailsBySubject", () => cy.mailpitNotHasEmailsBySubject("Goodbye", 0, 50, fast).then(subjects));
await step("mailpitHasEmailsByTo", () => cy.mailpitHasEmailsByTo("dave@example.net", 0, 50, fast).then(subjects));
await step("mailpitNotHasEmailsByTo", () => cy.mailpitNotHasEmailsByTo("nobody@example.net", 0, 50, fast).then(subjects));
await step("mailpitGetSubject", () => cy.mailpitGetSubject(messageA));
await step("mailpitGetFromAddress", () => cy.mailpitGetFromAddress(messageA));
await step("mailpitGetRecipientAddress", () => cy.mailpitGetRecipientAddress(messageA));
await step("mailpitGetAttachments", () => cy.mailpitGetAttachments(messageA));
await step("mailpitGetMailHTMlBody", () => cy.mailpitGetMailHTMlBody(messageA));
await step("mailpitGetMailTextBody", () => cy.mailpitGetMailTextBody(messageA));
await step("mailpitGetMailSpamAssassinSummary", () => cy.mailpitGetMailSpamAssassinSummary(messageA));
await step("mailpitSendMail", () => cy.mailpitSendMail({ subject: "Sent by cypress-mailpit", textBody: "cypress text", tags: ["Cypress"] }));
await step("sentMail", () => cy.mailpitGetMail(results.mailpitSendMail.value.ID));
// Read state: mailpitGetMail above opened messages (Mailpit marks them read).
const readView = (result) => ({
  unread: result.unread,
  read: Object.fromEntries(result.messages.map((m) => [m.Subject, m.Read])),
});
await step("mailpitSetAllEmailStatusAsUnRead", () =>
  cy.mailpitSetAllEmailStatusAsUnRead().then(() => cy.mailpitGetAllMails()).then(readView),
);
await step("mailpitSetStatusAsRead", () =>
  cy.mailpitSetStatusAsRead(summaryA).then(() => cy.mailpitGetAllMails()).then(readView),
);
await step("mailpitSetStatusAsUnRead", () =>
  cy.mailpitSetStatusAsUnRead([summaryA]).then(() => cy.mailpitGetAllMails()).then(readView),
);
await step("mailpitSetAllEmailStatusAsRead", () =>
  cy.mailpitSetAllEmailStatusAsRead().then(() => cy.mailpitGetAllMails()).then(readView),
);
await step("mailpitDeleteEmailsBySearch", () =>
  cy.mailpitDeleteEmailsBySearch("subject:Invoice").then(() => cy.mailpitGetAllMails()).then(subjects),
);
await step("mailpitDeleteAllEmails", () =>
  cy.mailpitDeleteAllEmails().then(() => cy.mailpitGetAllMails()).then(subjects),
);
console.log(JSON.stringify(results));
process.exit(0);

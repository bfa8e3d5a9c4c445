// cypress-mailhog 2.5.0's commands under cy_harness.mjs, against smtpmock serve.
// argv[2]: JSON {url}; prints {step: {ok, value | error}} as JSON.
import { createRequire } from "node:module";
import { install, run } from "./cy_harness.mjs";

const { url } = JSON.parse(process.argv[2]);
const { cy } = install({ config: { mailHogUrl: url, defaultCommandTimeout: 200 } });
createRequire(import.meta.url)("cypress-mailhog");

const results = {};
async function step(name, fn) {
  try {
    results[name] = { ok: true, value: await run(fn()) };
  } catch (error) {
    results[name] = { ok: false, error: String(error && error.message ? error.message : error) };
  }
}
const subjects = (mails) => mails.map((m) => m.Content.Headers.Subject[0]);

await step("mhGetJimModeOff", () => cy.mhGetJimMode());
await step("mhSetJimModeOn", () => cy.mhSetJimMode(true).then((r) => r.status));
await step("mhGetJimModeOn", () => cy.mhGetJimMode());
await step("mhSetJimModeOff", () => cy.mhSetJimMode(false).then((r) => r.status));
await step("mhGetJimModeOffAgain", () => cy.mhGetJimMode());
await step("mhGetAllMails", () => cy.mhGetAllMails().then(subjects));
await step("mhGetMailsBySubject", () => cy.mhGetMailsBySubject("Invoice 42").then(subjects));
await step("mhGetMailsByRecipient", () => cy.mhGetMailsByRecipient("bob@example.org").then(subjects));
await step("mhGetMailsBySender", () => cy.mhGetMailsBySender("carol@example.com").then(subjects));
await step("mhSearchMails", () => cy.mhSearchMails("containing", "Total: 42").then(subjects));
const mails = await run(cy.mhGetAllMails());
const mailA = mails.find((m) => m.Content.Headers.Subject[0] === "Hello Bob");
const mailB = mails.find((m) => m.Content.Headers.Subject[0] === "Invoice 42");
await step("mhFirst", () => cy.mhFirst(mails).then((m) => m.Content.Headers.Subject[0]));
await step("mhFilterBySubject", async () => subjects(await cy_filter("mhFilterBySubject", mails, "Hello Bob")));
await step("mhFilterByRecipient", async () => subjects(await cy_filter("mhFilterByRecipient", mails, "dave@example.net")));
await step("mhFilterBySender", async () => subjects(await cy_filter("mhFilterBySender", mails, "ann@example.com")));
await step("mhGetSubject", () => cy.mhGetSubject(mailA));
await step("mhGetBody", () => cy.mhGetBody(mailB));
await step("mhGetSender", () => cy.mhGetSender(mailA));
await step("mhGetRecipients", () => cy.mhGetRecipients(mailB));
await step("mhGetAttachments", () => cy.mhGetAttachments(mailA));
await step("mhHasMailWithSubject", () => cy.mhHasMailWithSubject("Hello Bob"));
await step("mhHasMailFrom", () => cy.mhHasMailFrom("ann@example.com"));
await step("mhHasMailTo", () => cy.mhHasMailTo("bob@example.org"));
await step("mhWaitForMails", () => cy.mhWaitForMails());
await step("mhDeleteAll", () => cy.mhDeleteAll().then(() => cy.mhGetAllMails()).then(subjects));
console.log(JSON.stringify(results));
process.exit(0);

function cy_filter(name, subject, arg) {
  // Filters are synchronous child commands: their return value is the filtered list.
  return globalThis.cy[name](subject, arg).promise;
}

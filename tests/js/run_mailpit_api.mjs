// Every method of npm mailpit-api 2.1.0, read state and tags included, against smtpmock serve.
// argv[2]: JSON {url, idA, partPdf, partTxt}; prints {step: {ok, value | error}} as JSON.
import { MailpitClient } from "mailpit-api";

const { url, idA, partPdf } = JSON.parse(process.argv[2]);
const client = new MailpitClient(url);
const results = {};
async function step(name, fn) {
  try {
    results[name] = { ok: true, value: await fn() };
  } catch (error) {
    results[name] = { ok: false, error: String(error && error.message ? error.message : error) };
  }
}
const b64 = async (blob) => Buffer.from(await blob.arrayBuffer()).toString("base64");

await step("getInfo", () => client.getInfo());
await step("getConfiguration", () => client.getConfiguration());
await step("listMessages", () => client.listMessages());
await step("listMessagesPage", () => client.listMessages(1, 1));
await step("getMessageSummaryLatest", () => client.getMessageSummary());
await step("getMessageSummary", () => client.getMessageSummary(idA));
await step("getMessageHeaders", () => client.getMessageHeaders(idA));
await step("getMessageAttachment", async () => b64(await client.getMessageAttachment(idA, partPdf)));
await step("getAttachmentThumbnail", async () => b64(await client.getAttachmentThumbnail(idA, partPdf)));
await step("getMessageSource", () => client.getMessageSource(idA));
await step("releaseMessage", () => client.releaseMessage(idA, { To: ["zed@example.net"] }));
await step("sendMessage", () =>
  client.sendMessage({
    From: { Email: "sender@example.com", Name: "Sender" },
    To: [{ Email: "to@example.com", Name: "To" }],
    Subject: "Sent over HTTP",
    Text: "sent text",
    HTML: "<p>sent <b>html</b></p>",
    Attachments: [{ Content: Buffer.from("attached via send").toString("base64"), Filename: "sent.txt" }],
  }),
);
await step("sentMessage", () => client.getMessageSummary(results.sendMessage.value.ID));
await step("searchMessages", () => client.searchMessages({ query: "subject:Invoice" }));
await step("waitForMessage", () => client.waitForMessage({ query: "from:carol@example.com" }, { timeout: 5000, interval: 50 }));
await step("waitForMessages", () => client.waitForMessages({ query: "to:bob@example.org", count: 1 }, { timeout: 5000, interval: 50 }));
await step("htmlCheck", () => client.htmlCheck(idA));
await step("linkCheck", () => client.linkCheck(idA));
await step("spamAssassinCheck", () => client.spamAssassinCheck(idA));
await step("getChaosTriggers", () => client.getChaosTriggers());
await step("setChaosTriggers", () => client.setChaosTriggers({ Recipient: { ErrorCode: 550, Probability: 100 } }));
await step("resetChaosTriggers", () => client.setChaosTriggers());
await step("renderMessageHTML", () => client.renderMessageHTML(idA));
await step("renderMessageText", () => client.renderMessageText(idA));
// Read state and tags. getMessageSummary(id) above opened A, B and the sent message: Mailpit
// marks a message read when it is opened.
const readView = (list) => ({
  unread: list.unread,
  messagesUnread: list.messages_unread,
  read: Object.fromEntries(list.messages.map((m) => [m.Subject, m.Read])),
});
await step("afterOpen", async () => readView(await client.listMessages()));
await step("setReadStatusAllUnread", async () => ({ reply: await client.setReadStatus(), list: readView(await client.listMessages()) }));
await step("setReadStatusIDs", async () => ({ reply: await client.setReadStatus({ IDs: [idA], Read: true }), list: readView(await client.listMessages()) }));
await step("setReadStatusSearch", async () => ({ reply: await client.setReadStatus({ Search: "subject:Invoice", Read: true }), list: readView(await client.listMessages()) }));
await step("searchUnread", async () => readView(await client.searchMessages({ query: "is:unread" })));
await step("setReadStatusAllRead", async () => ({ reply: await client.setReadStatus({ Read: true }), list: readView(await client.listMessages()) }));
const tagView = async () => ({
  tags: await client.getTags(),
  onMessages: Object.fromEntries((await client.listMessages()).messages.map((m) => [m.Subject, m.Tags])),
});
await step("setTags", async () => ({ reply: await client.setTags({ IDs: [idA], Tags: ["Urgent", "to do!", "urgent"] }), ...(await tagView()) }));
await step("getTags", () => client.getTags());
await step("searchTag", async () => (await client.searchMessages({ query: 'tag:"to do"' })).messages.map((m) => m.Subject));
await step("renameTag", async () => ({ reply: await client.renameTag("to do", "Done"), ...(await tagView()) }));
await step("deleteTag", async () => ({ reply: await client.deleteTag("Urgent"), ...(await tagView()), total: (await client.listMessages()).total }));
await step("setTagsRemove", async () => ({ reply: await client.setTags({ IDs: [idA] }), ...(await tagView()) }));
await step("deleteMessagesBySearch", async () => {
  await client.deleteMessagesBySearch({ query: "subject:Invoice" });
  return (await client.listMessages()).total;
});
await step("deleteMessagesByID", async () => {
  await client.deleteMessages({ IDs: [idA] });
  return (await client.listMessages()).messages.map((m) => m.Subject);
});
await step("deleteMessagesAll", async () => {
  await client.deleteMessages();
  return (await client.listMessages()).total;
});
console.log(JSON.stringify(results));

// Every method of npm mailhog 4.16.0 that talks to the server, against smtpmock serve.
// argv[2]: JSON {host, port, relayPort}; prints {step: {ok, value | error}} as JSON.
import mailhogFactory from "mailhog";

const { host, port, relayPort } = JSON.parse(process.argv[2]);
const mailhog = mailhogFactory({ host, port });
const results = {};
async function step(name, fn) {
  try {
    results[name] = { ok: true, value: await fn() };
  } catch (error) {
    results[name] = { ok: false, error: String(error && error.message ? error.message : error) };
  }
}
const view = (item) =>
  item && {
    ID: item.ID,
    subject: item.subject,
    from: item.from,
    to: item.to,
    cc: item.cc,
    replyTo: item.replyTo,
    date: item.date && item.date.toISOString(),
    deliveryDate: item.deliveryDate && item.deliveryDate.toISOString(),
    text: item.text,
    html: item.html,
    attachments: item.attachments.map((a) => ({ name: a.name, type: a.type, encoding: a.encoding, Body: a.Body })),
  };

await step("messages", async () => {
  const result = await mailhog.messages();
  return { total: result.total, count: result.count, items: result.items.map(view) };
});
await step("messagesPage", async () => {
  const result = await mailhog.messages(1, 1);
  return { total: result.total, count: result.count, start: result.start, subjects: result.items.map((i) => i.subject) };
});
await step("search", async () => {
  const result = await mailhog.search("Invoice");
  return { total: result.total, subjects: result.items.map((i) => i.subject) };
});
await step("searchTo", async () => {
  const result = await mailhog.search("bob@example.org", "to");
  return { total: result.total, subjects: result.items.map((i) => i.subject) };
});
await step("latestFrom", async () => view(await mailhog.latestFrom("carol@example.com")));
await step("latestTo", async () => view(await mailhog.latestTo("bob@example.org")));
await step("latestContaining", async () => view(await mailhog.latestContaining("Total: 42")));
const first = (await mailhog.messages()).items;
const idA = first.find((i) => i.subject === "Hello Bob").ID;
const idB = first.find((i) => i.subject === "Invoice 42").ID;
await step("releaseMessage", async () => {
  const response = await mailhog.releaseMessage(idA, { Host: "127.0.0.1", Port: String(relayPort), Email: "zed@example.net" });
  return response.statusCode;
});
await step("deleteMessage", async () => {
  await mailhog.deleteMessage(idB);
  return (await mailhog.messages()).items.map((i) => i.subject);
});
await step("deleteAll", async () => {
  await mailhog.deleteAll();
  return (await mailhog.messages()).total;
});
console.log(JSON.stringify(results));

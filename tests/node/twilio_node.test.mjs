// The official twilio-node client against a live softswitch: the calls, recordings and numbers a Twilio user
// makes, the client's own paging and filters, and webhook validation with `twilio.validateRequest`.
//
// Run by tests/e2e/test_twilio_node_e2e.py, which starts the switch and the SIP peers and passes:
//   SOFTSWITCH_BASE_URL   the switch's REST API (http://127.0.0.1:PORT)
//   TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN   the switch's account
//   SOFTSWITCH_SIP        the switch's SIP address (HOST:PORT), for inbound calls
//   ANSWER_URI            a lab phone that answers every call and plays a tone
//   RING_URI              a lab phone that rings and never answers
//   LABPHONE              the lab phone's command line (JSON array), to place an inbound call
// The tests run in order and share one switch: later ones count the calls the earlier ones made.

import { spawn } from "node:child_process";
import http from "node:http";
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import twilio from "twilio";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this file through tests/e2e/test_twilio_node_e2e.py`);
  return value;
};
const BASE_URL = env("SOFTSWITCH_BASE_URL");
const ACCOUNT_SID = env("TWILIO_ACCOUNT_SID");
const AUTH_TOKEN = env("TWILIO_AUTH_TOKEN");
const SWITCH_SIP = env("SOFTSWITCH_SIP");
const ANSWER_URI = env("ANSWER_URI");
const RING_URI = env("RING_URI");
const LABPHONE = JSON.parse(env("LABPHONE"));
const FROM = "+15550199";
const NUMBER = "+15550142";
const CALLER = "+15550177";
const SID = /^CA[0-9a-f]{32}$/;
const EVENTS = ["initiated", "ringing", "answered", "completed"];
const HOLD = '<Response><Pause length="20"/></Response>';

// The client rewrites the API's host for a region or an edge (constructor options or TWILIO_REGION /
// TWILIO_EDGE): neither may be set when it talks to the switch.  The base URL is the Api domain's.
delete process.env.TWILIO_REGION;
delete process.env.TWILIO_EDGE;
const client = twilio(ACCOUNT_SID, AUTH_TOKEN);
client.api.baseUrl = BASE_URL;

// -- the app's web server: webhooks and TwiML ------------------------------------------------------
class Hooks {
  constructor() {
    this.requests = [];
    this.twiml = new Map(); // path -> TwiML document to answer with
    this.waiters = [];
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = this.server.address().port;
  }

  stop() {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(resolve));
  }

  url(path) {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  handle(req, res) {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const target = new URL(req.url, this.url("/"));
      const body = Buffer.concat(chunks).toString("utf8");
      const form = req.method === "POST" ? new URLSearchParams(body) : target.searchParams;
      this.requests.push({
        method: req.method,
        path: target.pathname,
        url: this.url(req.url), // what the switch asked for, query included: what it signed
        params: Object.fromEntries(form),
        signature: req.headers["x-twilio-signature"],
      });
      const document = this.twiml.get(target.pathname);
      if (document === undefined) {
        res.writeHead(204).end();
      } else {
        res.writeHead(200, { "Content-Type": "text/xml" }).end(document);
      }
      for (const waiter of this.waiters.splice(0)) waiter();
    });
  }

  on(path, callSid) {
    return this.requests.filter((r) => r.path === path && (!callSid || r.params.CallSid === callSid));
  }

  async waitFor(path, count, callSid, timeout = 15000) {
    const deadline = Date.now() + timeout;
    while (this.on(path, callSid).length < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        assert.fail(`${count} requests to ${path} expected in ${timeout} ms, got ${JSON.stringify(this.on(path))}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
    return this.on(path, callSid);
  }

  async statuses(path, callSid, count) {
    return (await this.waitFor(path, count, callSid)).map((r) => r.params.CallStatus);
  }
}

const hooks = new Hooks();
const made = []; // [sid, what] of every call, in creation order
const states = new Map(); // sid -> final status

before(async () => {
  await hooks.start();
});

after(async () => {
  await hooks.stop();
});

/** A request the switch made is signed with the account's token, as `twilio.validateRequest` checks it. */
function assertSigned(request) {
  assert.ok(request.signature, `no X-Twilio-Signature on ${request.url}`);
  assert.equal(twilio.validateRequest(AUTH_TOKEN, request.signature, request.url, request.params), true,
    `bad signature on ${request.url} ${JSON.stringify(request.params)}`);
  // ... and the check can fail: another token, or one parameter changed.
  assert.equal(twilio.validateRequest("0".repeat(32), request.signature, request.url, request.params), false);
  const tampered = { ...request.params, CallSid: "CA" + "0".repeat(32) };
  assert.equal(twilio.validateRequest(AUTH_TOKEN, request.signature, request.url, tampered), false);
}

async function create(what, params) {
  const call = await client.calls.create({ from: FROM, ...params });
  assert.match(call.sid, SID);
  assert.equal(call.accountSid, ACCOUNT_SID);
  assert.equal(call.status, "queued");
  assert.equal(call.direction, "outbound-api");
  made.push([call.sid, what]);
  return call;
}

async function fetchStatus(sid) {
  return (await client.calls(sid).fetch()).status;
}

async function until(predicate, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  while (!(await predicate())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// -- calls ------------------------------------------------------------------------------------------
let answered; // call A: answered, then redirected to TwiML that hangs up

test("create and fetch a call; its status callbacks are signed", async () => {
  answered = await create("redirected", {
    to: ANSWER_URI, twiml: HOLD, statusCallback: hooks.url("/status"), statusCallbackEvent: EVENTS,
  });
  assert.equal(answered.to, ANSWER_URI);
  assert.equal(answered.from, FROM);
  const seen = await hooks.statuses("/status", answered.sid, 3);
  assert.deepEqual(seen, ["initiated", "ringing", "in-progress"]);
  const fetched = await client.calls(answered.sid).fetch();
  assert.equal(fetched.sid, answered.sid);
  assert.equal(fetched.status, "in-progress");
  assert.ok(fetched.startTime instanceof Date && fetched.dateCreated instanceof Date);
  assert.equal(fetched.endTime, null);
  const callbacks = hooks.on("/status", answered.sid);
  assert.deepEqual(callbacks.map((r) => r.params.SequenceNumber), ["0", "1", "2"]);
  callbacks.forEach(assertSigned);
});

test("update: redirect to new TwiML, which hangs up", async () => {
  hooks.twiml.set("/bye", "<Response><Hangup/></Response>");
  const updated = await client.calls(answered.sid).update({ url: hooks.url("/bye"), method: "POST" });
  assert.equal(updated.sid, answered.sid);
  const [fetchTwiml] = await hooks.waitFor("/bye", 1, answered.sid);
  assert.equal(fetchTwiml.method, "POST");
  assert.equal(fetchTwiml.params.CallStatus, "in-progress");
  assertSigned(fetchTwiml);
  assert.deepEqual(await hooks.statuses("/status", answered.sid, 4),
    ["initiated", "ringing", "in-progress", "completed"]);
  assertSigned(hooks.on("/status", answered.sid)[3]);
  assert.equal(await fetchStatus(answered.sid), "completed");
  states.set(answered.sid, "completed");
});

test("update: hang up a call in progress", async () => {
  const call = await create("hung up", {
    to: ANSWER_URI, twiml: HOLD, statusCallback: hooks.url("/status"), statusCallbackEvent: EVENTS,
  });
  await hooks.waitFor("/status", 3, call.sid);
  const updated = await client.calls(call.sid).update({ status: "completed" });
  assert.equal(updated.sid, call.sid);
  assert.deepEqual(await hooks.statuses("/status", call.sid, 4), ["initiated", "ringing", "in-progress", "completed"]);
  const ended = await client.calls(call.sid).fetch();
  assert.equal(ended.status, "completed");
  assert.ok(ended.endTime instanceof Date && ended.endTime >= ended.startTime);
  states.set(call.sid, "completed");
});

test("update: cancel a ringing call", async () => {
  const call = await create("canceled", {
    to: RING_URI, twiml: HOLD, statusCallback: hooks.url("/status"), statusCallbackEvent: EVENTS,
  });
  assert.deepEqual(await hooks.statuses("/status", call.sid, 2), ["initiated", "ringing"]);
  await client.calls(call.sid).update({ status: "canceled" });
  assert.deepEqual(await hooks.statuses("/status", call.sid, 3), ["initiated", "ringing", "canceled"]);
  assert.equal(await fetchStatus(call.sid), "canceled");
  states.set(call.sid, "canceled");
});

// Every call above started and ended at least a second before `mark`, every call below a second after it:
// the time filters' seconds cannot straddle it.
let mark;
test("a second apart", async () => {
  await sleep(1100);
  mark = new Date();
  await sleep(1100);
});

// -- recordings -------------------------------------------------------------------------------------
test("recordings: Record=true, the recording status callback, list, fetch, media, remove", async () => {
  const call = await create("recorded", {
    to: ANSWER_URI, twiml: '<Response><Pause length="2"/></Response>', record: true,
    recordingStatusCallback: hooks.url("/recording"), recordingStatusCallbackEvent: ["completed"],
    statusCallback: hooks.url("/status"),
  });
  assert.deepEqual(await hooks.statuses("/status", call.sid, 1), ["completed"]);
  states.set(call.sid, "completed");
  const [done] = await hooks.waitFor("/recording", 1, call.sid);
  assertSigned(done);
  assert.equal(done.params.RecordingStatus, "completed");
  const listed = await client.recordings.list({ callSid: call.sid });
  assert.deepEqual(listed.map((r) => r.sid), [done.params.RecordingSid]);
  const recording = await client.recordings(done.params.RecordingSid).fetch();
  assert.equal(recording.callSid, call.sid);
  assert.equal(recording.status, "completed");
  assert.ok(Number(recording.duration) >= 1, `duration ${recording.duration}`);
  assert.deepEqual((await client.calls(call.sid).recordings.list()).map((r) => r.sid), [recording.sid]);
  const media = await fetch(BASE_URL + recording.uri.replace(/\.json$/, ".wav"), {
    headers: { Authorization: "Basic " + Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString("base64") },
  });
  assert.equal(media.status, 200);
  const wav = Buffer.from(await media.arrayBuffer());
  assert.equal(wav.subarray(0, 4).toString("latin1"), "RIFF");
  assert.ok(wav.length > 8000, `${wav.length} bytes`);
  assert.equal(await client.recordings(recording.sid).remove(), true);
  assert.deepEqual(await client.recordings.list({ callSid: call.sid }), []);
});

// -- numbers ----------------------------------------------------------------------------------------
test("numbers: create, list, fetch, update; a call to the number fetches its signed voice URL; remove", async () => {
  const number = await client.incomingPhoneNumbers.create({
    phoneNumber: NUMBER, friendlyName: "node tier", voiceUrl: hooks.url("/nowhere"),
  });
  assert.match(number.sid, /^PN[0-9a-f]{32}$/);
  assert.equal(number.phoneNumber, NUMBER);
  const listed = await client.incomingPhoneNumbers.list({ phoneNumber: NUMBER });
  assert.deepEqual(listed.map((n) => n.sid), [number.sid]);
  assert.equal((await client.incomingPhoneNumbers(number.sid).fetch()).friendlyName, "node tier");
  hooks.twiml.set("/inbound", '<Response><Pause length="1"/><Hangup/></Response>');
  const updated = await client.incomingPhoneNumbers(number.sid).update({
    voiceUrl: hooks.url("/inbound?app=node"), statusCallback: hooks.url("/inbound-status"),
  });
  assert.equal(updated.voiceUrl, hooks.url("/inbound?app=node"));

  const phone = spawn(LABPHONE[0], [...LABPHONE.slice(1), "--sip", "127.0.0.1:0", "--call",
    `sip:${NUMBER}@${SWITCH_SIP}`, "--user", CALLER, "--max-seconds", "20"], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise((resolve) => phone.on("exit", resolve));
  let output = "";
  phone.stdout.on("data", (chunk) => { output += chunk; });
  phone.stderr.on("data", (chunk) => { output += chunk; });
  const [voice] = await hooks.waitFor("/inbound", 1);
  assert.equal(voice.url, hooks.url("/inbound?app=node"));
  assertSigned(voice);
  assert.equal(voice.params.To, NUMBER);
  assert.equal(voice.params.Direction, "inbound");
  assert.equal(voice.params.CallStatus, "ringing");
  assert.match(voice.params.From, new RegExp(CALLER.replace("+", "\\+")));
  made.push([voice.params.CallSid, "inbound"]);
  const [ended] = await hooks.waitFor("/inbound-status", 1, voice.params.CallSid);
  assertSigned(ended);
  assert.equal(ended.params.CallStatus, "completed");
  states.set(voice.params.CallSid, "completed");
  assert.equal(await exited, 0, output);

  assert.equal(await client.incomingPhoneNumbers(number.sid).remove(), true);
  await assert.rejects(client.incomingPhoneNumbers(number.sid).fetch(), (err) => {
    assert.equal(err.status, 404);
    assert.equal(err.code, 20404);
    return true;
  });
});

// -- lists: the client's own paging, filters --------------------------------------------------------
const sids = (calls) => calls.map((c) => c.sid);
const sorted = (values) => [...values].sort();

/** Every page from `first` on, following the client's own next pages: the SIDs, page by page. */
async function pages(first) {
  const seen = [];
  for (let page = first; page; page = await page.nextPage()) {
    seen.push(sids(page.instances));
  }
  return seen;
}

test("list: every call, newest first, through pages the client follows", async () => {
  const expected = made.map(([sid]) => sid).reverse();
  assert.deepEqual(made.map(([, what]) => what), ["redirected", "hung up", "canceled", "recorded", "inbound"]);
  const all = await client.calls.list({ pageSize: 2 });
  assert.deepEqual(sids(all), expected);
  const first = await client.calls.page({ pageSize: 2 });
  assert.equal(first.instances.length, 2);
  assert.ok(first.nextPageUrl, "a first page of 2 out of 5 has a next page");
  assert.deepEqual(await pages(first), [expected.slice(0, 2), expected.slice(2, 4), expected.slice(4)]);
  const each = [];
  await client.calls.each({ pageSize: 4 }, (call) => { each.push(call.sid); });
  assert.deepEqual(each, expected);
  assert.deepEqual(sids(await client.calls.list({ pageSize: 2, limit: 3 })), expected.slice(0, 3));
});

test("list filters: status, to, from, and start and end times as Date objects", async () => {
  const byWhat = Object.fromEntries(made.map(([sid, what]) => [what, sid]));
  const before = ["redirected", "hung up", "canceled"].map((w) => byWhat[w]);
  const since = ["recorded", "inbound"].map((w) => byWhat[w]);
  assert.deepEqual(sorted(sids(await client.calls.list({ status: "canceled" }))), [byWhat.canceled]);
  assert.deepEqual(sorted(sids(await client.calls.list({ status: "completed" }))),
    sorted([...states].filter(([, s]) => s === "completed").map(([sid]) => sid)));
  assert.deepEqual(sorted(sids(await client.calls.list({ to: RING_URI }))), [byWhat.canceled]);
  assert.deepEqual(sorted(sids(await client.calls.list({ to: ANSWER_URI, pageSize: 1 }))),
    sorted([byWhat.redirected, byWhat["hung up"], byWhat.recorded]));
  assert.deepEqual(sids(await client.calls.list({ from: FROM, status: "canceled" })), [byWhat.canceled]);
  assert.deepEqual(sorted(sids(await client.calls.list({ startTimeBefore: mark }))), sorted(before));
  assert.deepEqual(sorted(sids(await client.calls.list({ startTimeAfter: mark }))), sorted(since));
  assert.deepEqual(sorted(sids(await client.calls.list({ endTimeBefore: mark }))), sorted(before));
  assert.deepEqual(sorted(sids(await client.calls.list({ endTimeAfter: mark, pageSize: 1 }))), sorted(since));
  assert.deepEqual(sids(await client.calls.list({ startTimeAfter: new Date(Date.now() + 3600e3) })), []);
});

test("paging is a cursor: a call created between two pages does not repeat a record", async () => {
  const expected = made.map(([sid]) => sid).reverse();
  const first = await client.calls.page({ pageSize: 2 });
  assert.deepEqual(sids(first.instances), expected.slice(0, 2));
  const newer = await create("between pages", { to: ANSWER_URI, twiml: "<Response><Hangup/></Response>" });
  await until(async () => (await fetchStatus(newer.sid)) === "completed", "the new call to end");
  states.set(newer.sid, "completed");
  const rest = (await pages(await first.nextPage())).flat();
  assert.deepEqual(rest, expected.slice(2));
});

test("paging is a cursor: a call removed between two pages does not make one skipped; remove", async () => {
  const expected = made.map(([sid]) => sid).reverse();
  const first = await client.calls.page({ pageSize: 2 });
  assert.deepEqual(sids(first.instances), expected.slice(0, 2));
  const [gone] = first.instances;
  assert.equal(await client.calls(gone.sid).remove(), true);
  await assert.rejects(client.calls(gone.sid).fetch(), (err) => {
    assert.equal(err.status, 404);
    assert.equal(err.code, 20404);
    return true;
  });
  const rest = (await pages(await first.nextPage())).flat();
  assert.deepEqual(rest, expected.slice(2));
  assert.deepEqual(sids(await client.calls.list({})), expected.filter((sid) => sid !== gone.sid));
});

// Last, so the call it places counts in none of the lists above.
test("conferences and queues: list, fetch and update them with the client", async () => {
  const queue = await client.queues.create({ friendlyName: "node-queue", maxSize: 3 });
  assert.match(queue.sid, /^QU[0-9a-f]{32}$/);
  assert.deepEqual([queue.maxSize, queue.currentSize, queue.averageWaitTime], [3, 0, 0]);
  assert.ok((await client.queues.list()).some((q) => q.sid === queue.sid && q.friendlyName === "node-queue"));
  assert.equal((await client.queues(queue.sid).update({ maxSize: 4 })).maxSize, 4);
  assert.deepEqual(await client.queues(queue.sid).members.list(), []);
  assert.equal(await client.queues(queue.sid).remove(), true);
  assert.ok(!(await client.queues.list()).some((q) => q.sid === queue.sid));

  const twiml = '<Response><Dial><Conference beep="false" participantLabel="bob">node-room</Conference></Dial></Response>';
  const call = await client.calls.create({ from: FROM, to: ANSWER_URI, twiml });
  const live = async () => client.conferences.list({ friendlyName: "node-room", status: "in-progress" });
  await until(async () => (await live()).length === 1, "the room to start");
  const [room] = await live();
  assert.match(room.sid, /^CF[0-9a-f]{32}$/);
  assert.ok((await client.conferences.list({ dateCreated: new Date() })).some((c) => c.sid === room.sid));
  const [bob] = await client.conferences(room.sid).participants.list();
  assert.deepEqual([bob.callSid, bob.label, bob.muted], [call.sid, "bob", false]);
  assert.equal((await client.conferences(room.sid).participants("bob").update({ muted: true })).muted, true);
  const ended = await client.conferences(room.sid).update({ status: "completed" });
  assert.equal(ended.status, "completed");
  assert.equal((await client.conferences(room.sid).fetch()).reasonConferenceEnded, "conference-ended-via-api");
  await until(async () => (await client.calls(call.sid).fetch()).status === "completed", "the call to end");
});

// AMQP 0-9-1 load generator for bench/run.py, built on amqplib.
//
//   node loadgen.js '<json>'
//
// The JSON names a `kind` (flow | latency | backlog | connections) and its parameters; bench/run.py
// builds it (see bench/scenarios/__init__.py). Progress goes to stderr; the result is one JSON
// object on the last line of stdout. Every socket is opened with TCP_NODELAY (noDelay).
//
// The broker's RSS (VmRSS) and CPU time are read from /proc/<brokerPid>/ around each measured window.

const fs = require('node:fs');
const { performance } = require('node:perf_hooks');
const amqp = require('amqplib');

const params = JSON.parse(process.argv[2] || '{}');
const CLK_TCK = params.clkTck || 100;

const errors = [];
const events = [];
let closing = false;

function log(...args) {
  console.error('[loadgen]', ...args);
}

function describe(err) {
  if (err === undefined || err === null) return 'closed';
  if (err.message) return err.message;
  return String(err);
}

function noteError(where, err) {
  const text = `${where}: ${describe(err)}`;
  if (errors.length < 50) errors.push(text);
  log(text);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// --- the broker process, from /proc ---------------------------------------------------------

function rssKb(pid) {
  if (!pid) return null;
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

function cpuSeconds(pid) {
  if (!pid) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime + stime
  } catch {
    return null;
  }
}

// CPU seconds the whole machine has been busy (every state but idle and iowait), from /proc/stat.
function machineBusySeconds() {
  try {
    const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - fields[3] - fields[4]) / CLK_TCK;
  } catch {
    return null;
  }
}

function snapshot() {
  const usage = process.cpuUsage();
  return {
    t: performance.now(),
    brokerCpu: cpuSeconds(params.brokerPid),
    selfCpu: (usage.user + usage.system) / 1e6,
    machineCpu: machineBusySeconds(),
  };
}

// Cores' worth of CPU used over the window by the broker, this load generator, and everything else
// on the machine (other processes are noise: they compete with the broker and the load generator).
function cpuShare(start, end) {
  const seconds = (end.t - start.t) / 1000;
  const rate = (a, b) => (a === null || b === null ? null : (b - a) / seconds);
  const brokerCpu = rate(start.brokerCpu, end.brokerCpu);
  const loadgenCpu = rate(start.selfCpu, end.selfCpu);
  const machineCpu = rate(start.machineCpu, end.machineCpu);
  const otherCpu = brokerCpu === null || machineCpu === null ? null : Math.max(0, machineCpu - brokerCpu - loadgenCpu);
  return { brokerCpu, loadgenCpu, machineCpu, otherCpu };
}

// --- connections ----------------------------------------------------------------------------

async function connect(name) {
  const conn = await amqp.connect(params.url, {
    noDelay: true,
    clientProperties: { connection_name: `bench ${name}` },
  });
  conn.on('error', (err) => noteError(`${name} connection error`, err));
  conn.on('close', (err) => {
    if (!closing) noteError(`${name} connection closed unexpectedly`, err);
  });
  conn.on('blocked', (reason) => events.push(`${name} blocked: ${reason}`));
  conn.on('unblocked', () => events.push(`${name} unblocked`));
  return conn;
}

function watchChannel(ch, name) {
  ch.on('error', (err) => noteError(`${name} channel error`, err));
  ch.on('close', () => {
    if (!closing) noteError(`${name} channel closed unexpectedly`, null);
  });
  return ch;
}

async function closeAll(conns) {
  closing = true;
  await Promise.all(
    conns.map(async (conn) => {
      try {
        await withTimeout(conn.close(), 10000, 'connection.close');
      } catch (err) {
        noteError('close', err);
      }
    }),
  );
}

// Waits until `done()` is true; gives up after `quietMs` without progress (as measured by `progress()`)
// or `maxMs` in all. Returns the milliseconds waited and whether it finished.
async function waitFor(done, progress, quietMs = 5000, maxMs = 120000) {
  const start = performance.now();
  let last = progress();
  let lastChange = start;
  while (!done()) {
    await sleep(20);
    const now = performance.now();
    const value = progress();
    if (value !== last) {
      last = value;
      lastChange = now;
    }
    if (now - lastChange > quietMs || now - start > maxMs) return { ms: now - start, finished: false };
  }
  return { ms: performance.now() - start, finished: true };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

function makeBody(size, seq) {
  const body = Buffer.alloc(size);
  if (size >= 8) body.writeDoubleBE(seq, 0);
  if (size >= 16) body.writeDoubleBE(performance.now(), 8);
  return body;
}

// --- topology ---------------------------------------------------------------------------------

async function declare(ch, p) {
  const queues = [];
  if (p.exchangeType) await ch.assertExchange(p.exchange, p.exchangeType, { durable: !!p.durable });
  for (let i = 0; i < p.queues; i++) {
    const name = `bench.${p.name}.${i}`;
    await ch.assertQueue(name, { durable: !!p.durable, autoDelete: false, arguments: p.queueArguments || {} });
    queues.push(name);
    if (p.exchangeType === 'fanout') await ch.bindQueue(name, p.exchange, '');
  }
  for (const [index, pattern] of p.bindings || []) await ch.bindQueue(queues[index], p.exchange, pattern);
  return queues;
}

// --- kind: flow -- publishers -> exchange -> queues -> consumers, as fast as they go ---------

async function flow(p) {
  const admin = await connect('admin');
  const adminCh = watchChannel(await admin.createChannel(), 'admin');
  const queues = await declare(adminCh, p);
  const conns = [admin];
  const manual = p.ack === 'manual';
  const fan = p.fan || 1; // deliveries per published message
  const window = p.window > 0 ? p.window : Number.POSITIVE_INFINITY; // cap on published - delivered / fan
  let delivered = 0;
  let outOfOrder = 0;
  let publisherState = 'idle';
  let resume = () => {};

  for (let i = 0; i < queues.length; i++) {
    const conn = await connect(`consumer-${i}`);
    conns.push(conn);
    const ch = watchChannel(await conn.createChannel(), `consumer-${i}`);
    if (manual) await ch.prefetch(p.prefetch);
    const state = { last: -1, unacked: 0, lastMsg: null };
    await ch.consume(
      queues[i],
      (msg) => {
        if (msg === null) {
          noteError(`consumer-${i}`, 'cancelled by the broker');
          return;
        }
        delivered++;
        const seq = msg.content.readDoubleBE(0);
        if (seq <= state.last) outOfOrder++;
        state.last = seq;
        if (manual) {
          state.lastMsg = msg;
          if (++state.unacked >= p.ackEvery) {
            ch.ack(msg, true);
            state.unacked = 0;
            state.lastMsg = null;
          }
        }
        if (publisherState === 'window') resume();
      },
      { noAck: !manual },
    );
    state.ch = ch;
    queues[i] = { name: queues[i], state };
  }

  const pconn = await connect('publisher');
  conns.push(pconn);
  const confirm = !!p.confirm;
  const pch = watchChannel(confirm ? await pconn.createConfirmChannel() : await pconn.createChannel(), 'publisher');
  const options = { persistent: !!p.persistent };
  const keys = p.keys || [queues[0].name];
  const variety = p.keyVariety || 1;
  let published = 0;
  let confirmed = 0;
  let nacked = 0;
  let outstanding = 0;
  let running = true;

  const onConfirm = (err) => {
    outstanding--;
    if (err) nacked++;
    else confirmed++;
    if (publisherState === 'window') resume();
  };

  const pump = () => {
    publisherState = 'running';
    let batch = 0;
    while (running) {
      if (published - delivered / fan >= window || (confirm && outstanding >= p.maxOutstanding)) {
        publisherState = 'window';
        return;
      }
      const body = makeBody(p.size, published);
      const entry = keys[published % keys.length];
      // A [prefix, suffix] key gets a number between them that changes every round of the keys.
      const key =
        typeof entry === 'string' ? entry : `${entry[0]}${Math.floor(published / keys.length) % variety}${entry[1]}`;
      const ok = confirm
        ? pch.publish(p.exchange, key, body, options, onConfirm)
        : pch.publish(p.exchange, key, body, options);
      if (confirm) outstanding++;
      published++;
      if (!ok) {
        publisherState = 'drain';
        pch.once('drain', pump);
        return;
      }
      if (++batch >= 200) {
        publisherState = 'scheduled';
        setImmediate(pump);
        return;
      }
    }
    publisherState = 'idle';
  };
  resume = () => {
    // Hysteresis: let the consumers take back half the window before publishing again.
    if (published - delivered / fan < window / 2 && (!confirm || outstanding < p.maxOutstanding)) {
      publisherState = 'scheduled';
      setImmediate(pump);
    }
  };

  // The measured value: deliveries per second, or confirms per second with confirms on.
  const counter = () => (confirm ? confirmed : delivered);
  setImmediate(pump);
  await sleep(p.warmupMs);
  const start = { ...snapshot(), count: counter(), published, delivered };
  const timeline = [];
  let previous = counter();
  const ticker = setInterval(() => {
    const now = counter();
    timeline.push(now - previous);
    previous = now;
  }, 1000);
  await sleep(p.durationMs);
  const end = { ...snapshot(), count: counter(), published, delivered };
  clearInterval(ticker);
  const rssAtEnd = rssKb(params.brokerPid);
  running = false;

  const expected = () => published * fan;
  const drain = await waitFor(
    () => delivered >= expected() && outstanding === 0,
    () => delivered + confirmed,
  );
  for (const q of queues) {
    if (q.state.lastMsg) q.state.ch.ack(q.state.lastMsg, true);
  }
  await closeAll(conns);
  const seconds = (end.t - start.t) / 1000;
  return {
    value: (end.count - start.count) / seconds,
    unit: 'msg/s',
    published: published,
    publishRate: (end.published - start.published) / seconds,
    deliverRate: (end.delivered - start.delivered) / seconds,
    delivered,
    expectedDeliveries: expected(),
    lost: Math.max(0, expected() - delivered),
    duplicates: Math.max(0, delivered - expected()),
    outOfOrder,
    confirmed,
    nacked,
    unconfirmed: outstanding,
    drainMs: drain.ms,
    drained: drain.finished,
    timeline,
    minSecond: timeline.length ? Math.min(...timeline) : null,
    rssKbAtEnd: rssAtEnd,
    ...cpuShare(start, end),
  };
}

// --- kind: latency -- a fixed publish rate, publish->deliver latency from timestamps in the body ---

async function latency(p) {
  const admin = await connect('admin');
  const adminCh = watchChannel(await admin.createChannel(), 'admin');
  const [queue] = await declare(adminCh, { ...p, queues: 1 });
  const cconn = await connect('consumer');
  const cch = watchChannel(await cconn.createChannel(), 'consumer');
  let delivered = 0;
  let recording = false;
  const samples = new Float64Array(Math.ceil((p.rate * (p.durationMs + 5000)) / 1000) + 1000);
  let nSamples = 0;
  let outOfOrder = 0;
  let last = -1;
  await cch.consume(
    queue,
    (msg) => {
      const now = performance.now();
      delivered++;
      const seq = msg.content.readDoubleBE(0);
      if (seq <= last) outOfOrder++;
      last = seq;
      if (recording && nSamples < samples.length) samples[nSamples++] = now - msg.content.readDoubleBE(8);
    },
    { noAck: true },
  );
  const pconn = await connect('publisher');
  const pch = watchChannel(await pconn.createChannel(), 'publisher');
  let published = 0;
  let running = true;
  let behind = 0; // ticks where the socket would not take more (publish returned false)
  const t0 = performance.now();
  const tick = () => {
    if (!running) return;
    const due = Math.floor(((performance.now() - t0) * p.rate) / 1000);
    while (published < due) {
      if (!pch.publish('', queue, makeBody(p.size, published))) behind++;
      published++;
    }
    setTimeout(tick, 1);
  };
  tick();
  await sleep(p.warmupMs);
  const start = { ...snapshot(), published, delivered };
  recording = true;
  await sleep(p.durationMs);
  recording = false;
  const end = { ...snapshot(), published, delivered };
  running = false;
  const drain = await waitFor(
    () => delivered >= published,
    () => delivered,
  );
  await closeAll([admin, cconn, pconn]);
  const sorted = Array.from(samples.subarray(0, nSamples)).sort((a, b) => a - b);
  const seconds = (end.t - start.t) / 1000;
  return {
    value: percentile(sorted, 50),
    unit: 'ms',
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted.length ? sorted[sorted.length - 1] : null,
    samples: nSamples,
    publishRate: (end.published - start.published) / seconds,
    deliverRate: (end.delivered - start.delivered) / seconds,
    published,
    delivered,
    lost: Math.max(0, published - delivered),
    outOfOrder,
    behind,
    drainMs: drain.ms,
    drained: drain.finished,
    rssKbAtEnd: rssKb(params.brokerPid),
    ...cpuShare(start, end),
  };
}

// --- kind: backlog -- N messages into one queue with no consumer, the memory, then the drain ---

async function backlog(p) {
  const admin = await connect('admin');
  const adminCh = watchChannel(await admin.createChannel(), 'admin');
  const [queue] = await declare(adminCh, { ...p, queues: 1 });
  const pconn = await connect('publisher');
  const pch = watchChannel(await pconn.createChannel(), 'publisher');
  await sleep(1000);
  const rssBefore = rssKb(params.brokerPid);

  const publishStart = performance.now();
  let published = 0;
  await new Promise((resolve) => {
    const pump = () => {
      let batch = 0;
      while (published < p.count) {
        const ok = pch.publish('', queue, makeBody(p.size, published));
        published++;
        if (!ok) {
          pch.once('drain', pump);
          return;
        }
        if (++batch >= 1000) {
          setImmediate(pump);
          return;
        }
      }
      resolve();
    };
    pump();
  });
  // Everything is handed to the socket; the broker has it all once the queue's depth says so.
  let depth = 0;
  const fillStart = performance.now();
  while (depth < p.count && performance.now() - fillStart < 600000) {
    const ok = await withTimeout(adminCh.checkQueue(queue), 30000, 'queue.declare passive');
    depth = ok.messageCount;
    if (depth < p.count) await sleep(100);
  }
  const publishMs = performance.now() - publishStart;
  await sleep(p.settleMs);
  const rssFull = rssKb(params.brokerPid);

  // Drain with one consumer: manual acks, prefetch and multiple-ack as in the manual-ack scenario.
  const cconn = await connect('consumer');
  const cch = watchChannel(await cconn.createChannel(), 'consumer');
  await cch.prefetch(p.prefetch);
  let delivered = 0;
  let unacked = 0;
  let lastMsg = null;
  let outOfOrder = 0;
  let last = -1;
  const drainStart = { ...snapshot() };
  let drainEnd = null;
  await cch.consume(
    queue,
    (msg) => {
      delivered++;
      const seq = msg.content.readDoubleBE(0);
      if (seq <= last) outOfOrder++;
      last = seq;
      lastMsg = msg;
      if (++unacked >= p.ackEvery) {
        cch.ack(msg, true);
        unacked = 0;
        lastMsg = null;
      }
      if (delivered === depth) {
        drainEnd = snapshot();
      }
    },
    { noAck: false },
  );
  const progress = await waitFor(
    () => drainEnd !== null,
    () => delivered,
    15000,
    900000,
  );
  if (lastMsg) cch.ack(lastMsg, true);
  await sleep(p.settleMs);
  const rssDrained = rssKb(params.brokerPid);
  await closeAll([admin, pconn, cconn]);
  const end = drainEnd || snapshot();
  const drainSeconds = (end.t - drainStart.t) / 1000;
  return {
    value: rssFull !== null && rssBefore !== null ? (rssFull - rssBefore) / depth : null,
    unit: 'KB/msg',
    rssKbBefore: rssBefore,
    rssKbFull: rssFull,
    rssKbDrained: rssDrained,
    queued: depth,
    published,
    publishRate: (published * 1000) / publishMs,
    drainRate: delivered / drainSeconds,
    delivered,
    lost: Math.max(0, published - delivered),
    outOfOrder,
    drained: progress.finished,
    ...cpuShare(drainStart, end),
  };
}

// --- kind: connections -- N connections, one channel each: the broker's memory per connection ---

async function connections(p) {
  await sleep(1000);
  const rssBefore = rssKb(params.brokerPid);
  const conns = [];
  const start = performance.now();
  let next = 0;
  const opener = async () => {
    while (next < p.count) {
      const index = next++;
      const conn = await connect(`conn-${index}`);
      conns.push(conn);
      watchChannel(await conn.createChannel(), `conn-${index}`);
    }
  };
  await Promise.all(Array.from({ length: p.concurrency }, opener));
  const openMs = performance.now() - start;
  await sleep(p.settleMs);
  const rssOpen = rssKb(params.brokerPid);
  await closeAll(conns);
  await sleep(p.settleMs);
  const rssClosed = rssKb(params.brokerPid);
  return {
    value: rssOpen !== null && rssBefore !== null ? (rssOpen - rssBefore) / conns.length : null,
    unit: 'KB/conn',
    connections: conns.length,
    openRate: (conns.length * 1000) / openMs,
    rssKbBefore: rssBefore,
    rssKbOpen: rssOpen,
    rssKbClosed: rssClosed,
  };
}

const kinds = { flow, latency, backlog, connections };

async function main() {
  const run = kinds[params.kind];
  if (!run) throw new Error(`unknown kind ${params.kind}`);
  const result = await run(params);
  result.errors = errors;
  result.events = events;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    noteError('fatal', err);
    process.stdout.write(`${JSON.stringify({ value: null, fatal: describe(err), errors, events })}\n`);
    process.exit(1);
  });


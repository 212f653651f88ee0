// A publisher in a tight synchronous loop, as Node applications write one:
//   while (ch.sendToQueue(queue, body)) {}   then wait for 'drain', and again.
// Each loop must end (the channel's buffer fills because the broker applies back-pressure) and
// each 'drain' must come (the broker reads again). Prints one JSON line with what happened.
// Usage: node sync_publish_loop.js URL QUEUE TOTAL CONSUMER(none|manual)
const amqp = require('amqplib');

const [url, queue, totalText, consumerKind] = process.argv.slice(2);
const total = Number(totalText);

async function main() {
  const admin = await amqp.connect(url);
  const adminCh = await admin.createChannel();
  await adminCh.assertQueue(queue, { durable: false });
  let received = 0;
  let outOfOrder = 0;
  let last = -1;
  let consumerConn = null;
  if (consumerKind === 'manual') {
    consumerConn = await amqp.connect(url);
    const ch = await consumerConn.createChannel();
    await ch.prefetch(100);
    await ch.consume(queue, (msg) => {
      const seq = msg.content.readUInt32BE(0);
      if (seq <= last) outOfOrder++;
      last = seq;
      received++;
      if (received % 50 === 0 || received === total) ch.ack(msg, true);
    });
  }
  const publisher = await amqp.connect(url);
  const ch = await publisher.createChannel();
  let sent = 0;
  let loops = 0;
  while (sent < total) {
    // The tight loop: nothing else runs in this process until sendToQueue says "full".
    let full = false;
    while (sent < total && !full) {
      const body = Buffer.alloc(16);
      body.writeUInt32BE(sent, 0);
      sent++;
      full = !ch.sendToQueue(queue, body);
    }
    if (!full) break;
    loops++;
    await new Promise((resolve) => ch.once('drain', resolve));
  }
  // What was sent is still on its way (in TCP buffers, in the broker): wait for it to arrive.
  const deadline = Date.now() + 30000;
  let messageCount = 0;
  for (;;) {
    ({ messageCount } = await adminCh.checkQueue(queue));
    const arrived = consumerConn !== null ? received : messageCount;
    if (arrived >= total || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  console.log(JSON.stringify({ sent, loops, received, outOfOrder, queued: messageCount }));
  await publisher.close();
  if (consumerConn !== null) await consumerConn.close();
  await admin.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

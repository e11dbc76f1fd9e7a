// Bun's built-in WebSocket pub/sub (uWebSockets underneath): a client subscribes to the room
// named in `?room=`; every message it sends is published to all subscribers, the sender
// included (server.publish, unlike ws.publish, does not skip the sender).
const port = Number(process.env.PORT ?? 4000);
const server = Bun.serve<{ room: string }>({
  hostname: '127.0.0.1',
  port,
  fetch(req, server) {
    const room = new URL(req.url).searchParams.get('room') ?? 'lobby';
    if (server.upgrade(req, { data: { room } })) return;
    return new Response('WebSocket only', { status: 400 });
  },
  websocket: {
    open(ws) {
      ws.subscribe(ws.data.room);
    },
    message(ws, message) {
      server.publish(ws.data.room, message);
    },
  },
});
console.log(`bun peer listening on ${server.port}`);

// Node + ws 8: a client joins the room named in `?room=`; every text message it sends goes to
// every member of that room, the sender included. Nothing is stored.
import { WebSocketServer } from 'ws';

const port = Number(process.env.PORT ?? 4000);
const rooms = new Map();
const wss = new WebSocketServer({ port, host: '127.0.0.1' });
wss.on('connection', (socket, req) => {
  const room = new URL(req.url, 'http://x').searchParams.get('room') ?? 'lobby';
  if (!rooms.has(room)) rooms.set(room, new Set());
  const members = rooms.get(room);
  members.add(socket);
  socket.on('message', (data, isBinary) => {
    for (const m of members) m.send(data, { binary: isBinary });
  });
  socket.on('close', () => {
    members.delete(socket);
    if (members.size === 0) rooms.delete(room);
  });
});
wss.on('listening', () => console.log(`ws peer listening on ${port}`));

// Node + socket.io 4 rooms: a client joins the room named in the handshake query `room`;
// every "msg" event it emits goes to every member of that room, the sender included.
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? 4000);
const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false });
io.on('connection', (socket) => {
  const room = socket.handshake.query.room ?? 'lobby';
  socket.join(room);
  socket.on('msg', (payload) => io.to(room).emit('msg', payload));
});
http.listen(port, '127.0.0.1', () => console.log(`socket.io peer listening on ${port}`));

"""A real SMTP server for LeadGen's tests and benchmarks (aiosmtpd), standing in for a relay.

It listens on 127.0.0.1 (port 0 = any free port, printed as `PORT <n>` on stdout once it
listens), accepts every message and records it under DIR:

  DIR/index.tsv   one line per accepted message: Message-ID, envelope recipient(s), bytes
  DIR/msgs/N.eml  the message as received (unless --index-only)

--reply CODE answers every RCPT with CODE (e.g. 451 to play a relay that defers, 550 to play
one that refuses); --reply-file FILE reads that code from FILE before each RCPT, so a test can
change the relay's mood while it runs (an empty or missing file means accept).
"""

import argparse
import asyncio
import os
import re
import sys

from aiosmtpd.smtp import SMTP

MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


class Sink:
    def __init__(self, folder, index_only, reply, reply_file):
        self.folder = folder
        self.index_only = index_only
        self.reply = reply
        self.reply_file = reply_file
        self.count = 0
        os.makedirs(os.path.join(folder, "msgs"), exist_ok=True)
        self.index = open(os.path.join(folder, "index.tsv"), "a", buffering=1)

    def mood(self):
        if self.reply_file:
            try:
                with open(self.reply_file) as f:
                    code = f.read().strip()
                return code or None
            except FileNotFoundError:
                return None
        return self.reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.mood()
        if code:
            return f"{code} {'Try again later' if code.startswith('4') else 'No such user'}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or b""
        found = MESSAGE_ID.search(data)
        mid = found.group(1).decode("ascii", "replace") if found else "-"
        self.count += 1
        if not self.index_only:
            path = os.path.join(self.folder, "msgs", f"{self.count}.eml")
            with open(path, "wb") as f:
                f.write(data)
        self.index.write(f"{mid}\t{','.join(envelope.rcpt_tos)}\t{len(data)}\n")
        return "250 Message accepted for delivery"


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--index-only", action="store_true")
    p.add_argument("--reply")
    p.add_argument("--reply-file")
    a = p.parse_args()
    sink = Sink(a.folder, a.index_only, a.reply, a.reply_file)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.test", enable_SMTPUTF8=True, decode_data=False,
                     data_size_limit=10 * 1024 * 1024),
        host="127.0.0.1",
        port=a.port,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)

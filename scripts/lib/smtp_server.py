"""A real SMTP server for development and tests (aiosmtpd), storing what it receives.

Every accepted message is written to DIR as NNNNNN.eml (the raw message) and NNNNNN.json
(envelope, decoded subject, text and HTML parts) — read the mail there.

Recipients can ask for failures, so retries can be tested against a real server:
  local+451@domain   the first DATA for this recipient gets "451 4.3.0 try again later",
                     later ones are accepted (a transient failure, then delivery)
  local+550@domain   RCPT is refused with "550 5.1.1 mailbox unavailable", always

With --tls-cert/--tls-key the server offers STARTTLS and requires it; with --user/--password
it also requires AUTH (PLAIN or LOGIN, only after STARTTLS). Each .json records whether the
session was encrypted ("tls") and who authenticated ("authenticatedAs").

usage: smtp_server.py --port 1025 --dir .data/mail [--host 127.0.0.1]
                      [--tls-cert cert.pem --tls-key key.pem] [--user U --password P]
"""
import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Store:
    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        existing = [int(n.split(".")[0]) for n in os.listdir(directory) if n.endswith(".eml") and n.split(".")[0].isdigit()]
        self.counter = itertools.count(max(existing, default=0) + 1)
        self.failed_once = set()
        self.lock = threading.Lock()


class Handler:
    def __init__(self, store):
        self.store = store

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.endswith("+550"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.store.lock:
            for rcpt in envelope.rcpt_tos:
                if rcpt.split("@")[0].endswith("+451") and rcpt not in self.store.failed_once:
                    self.store.failed_once.add(rcpt)
                    return "451 4.3.0 try again later"
            n = next(self.store.counter)
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts.setdefault(part.get_content_type(), part.get_content())
        summary = {
            "mailFrom": envelope.mail_from,
            "rcptTo": envelope.rcpt_tos,
            "from": str(message.get("From", "")),
            "to": str(message.get("To", "")),
            "subject": str(message.get("Subject", "")),
            "messageId": str(message.get("Message-ID", "")),
            "date": str(message.get("Date", "")),
            "text": parts.get("text/plain", ""),
            "html": parts.get("text/html", ""),
            "tls": session.ssl is not None,
            "authenticatedAs": session.auth_data.decode() if isinstance(session.auth_data, bytes) else session.auth_data,
        }
        base = os.path.join(self.store.directory, "%06d" % n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(raw)
        os.replace(base + ".eml.tmp", base + ".eml")
        with open(base + ".json.tmp", "w") as f:
            json.dump(summary, f, ensure_ascii=False, indent=1)
        os.replace(base + ".json.tmp", base + ".json")
        return "250 2.0.0 queued as %06d" % n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    options = {}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        options.update(tls_context=context, require_starttls=True)
    if args.user:
        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == args.user and auth_data.password.decode() == args.password
            return AuthResult(success=ok, auth_data=args.user if ok else None)
        options.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(args.tls_cert))
    else:
        options.update(auth_require_tls=False)
    controller = Controller(Handler(Store(args.dir)), hostname=args.host, port=args.port,
                            server_hostname="aira-dev-smtp", decode_data=False, **options)
    controller.start()
    print("smtp server on %s:%d, mail in %s" % (args.host, args.port, args.dir), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    try:
        controller.stop()
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""mailtool - the test suites' SMTP and IMAP client (Python stdlib only).

Every connection goes to 127.0.0.1; there is no way to name another host.

  send    one message; prints "250 <token>" or the failing reply, exit 1 on
          anything but 250
  ehlo    print the EHLO keywords (after STARTTLS with --starttls)
  load    N messages over C parallel connections, each with a unique
          X-Test-Token header; writes the tokens that got 250 to --out
  imap    log in over IMAP; print the messages in INBOX (or only a count),
          or the tokens found in them
  tokens  the X-Test-Token values of every message file under a Maildir tree
"""

import argparse
import concurrent.futures
import email
import imaplib
import os
import smtplib
import ssl
import sys
import time
import uuid

HOST = "127.0.0.1"


def tls_context():
    # Test certificates are self-signed: encryption is what is tested.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(args):
    timeout = args.timeout
    source = (args.source, 0) if args.source else None
    if args.ssl:
        s = smtplib.SMTP_SSL(HOST, args.port, timeout=timeout,
                             context=tls_context(), source_address=source)
    else:
        s = smtplib.SMTP(HOST, args.port, timeout=timeout,
                         source_address=source)
    s.ehlo("client.test")
    if args.starttls:
        s.starttls(context=tls_context())
        s.ehlo("client.test")
    if args.auth:
        user, _, password = args.auth.partition(":")
        s.login(user, password)
    return s


def build_message(args, token):
    headers = [
        f"From: {args.sender}",
        f"To: {', '.join(args.to)}",
        f"Subject: {args.subject}",
        f"Message-ID: <{token}@client.test>",
        f"X-Test-Token: {token}",
    ]
    headers += args.header or []
    body = args.body
    if args.size:
        line = "x" * 75 + "\r\n"
        body += "\r\n" + line * max(1, args.size // len(line))
    return "\r\n".join(headers) + "\r\n\r\n" + body + "\r\n"


def send_one(args, token):
    """Return (code, text) of the final reply; code 0 on connection errors."""
    try:
        s = connect(args)
        try:
            refused = s.sendmail(args.sender, args.to,
                                 build_message(args, token))
            if refused:
                return 550, str(refused)
            return 250, "ok"
        finally:
            try:
                s.quit()
            except Exception:
                pass
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        return code, text.decode(errors="replace")
    except (OSError, smtplib.SMTPException) as e:
        return 0, str(e)


def cmd_send(args):
    token = args.token or uuid.uuid4().hex
    code, text = send_one(args, token)
    print(f"{code} {token if code == 250 else text}")
    return 0 if code == 250 else 1


def cmd_ehlo(args):
    s = connect(args)
    for k in sorted(s.esmtp_features):
        print(f"{k.upper()} {s.esmtp_features[k]}".strip())
    s.quit()
    return 0


def cmd_load(args):
    deadline = time.time() + args.max_seconds
    results = {}

    def one(i):
        if args.pace:
            # Spread the messages over time: message i starts no earlier
            # than i * pace / concurrency seconds after the start.
            start = deadline - args.max_seconds + i * args.pace / args.concurrency
            time.sleep(max(0.0, start - time.time()))
        if time.time() > deadline:
            return i, None, 0, "time budget exhausted"
        token = f"{args.prefix}-{i:06d}-{uuid.uuid4().hex[:8]}"
        code, text = send_one(args, token)
        return i, token, code, text

    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        for i, token, code, text in pool.map(one, range(args.count)):
            results[i] = (token, code, text)
    accepted = [t for t, c, _ in results.values() if c == 250]
    with open(args.out, "w") as f:
        for t in sorted(accepted):
            f.write(t + "\n")
    codes = {}
    for _, c, _ in results.values():
        codes[c] = codes.get(c, 0) + 1
    summary = " ".join(f"{c}:{n}" for c, n in sorted(codes.items()))
    print(f"sent {len(results)} accepted {len(accepted)} codes {summary}")
    five = [x for x in results.values() if 500 <= x[1] < 600]
    if five and args.no_5xx:
        print(f"5xx replies: {five[:3]}", file=sys.stderr)
        return 1
    return 0


def imap_messages(args):
    m = imaplib.IMAP4(HOST, args.port, timeout=args.timeout)
    m.login(args.user, args.password)
    m.select("INBOX", readonly=True)
    typ, data = m.search(None, "ALL")
    out = []
    for num in data[0].split():
        typ, msg = m.fetch(num, "(RFC822)")
        out.append(msg[0][1])
    m.logout()
    return out


def cmd_imap(args):
    msgs = imap_messages(args)
    if args.count:
        print(len(msgs))
    elif args.tokens:
        for raw in msgs:
            tok = email.message_from_bytes(raw).get("X-Test-Token")
            if tok:
                print(tok)
    else:
        for raw in msgs:
            sys.stdout.write(raw.decode(errors="replace"))
            sys.stdout.write("\n.\n")
    return 0


def cmd_tokens(args):
    for root, _, files in os.walk(args.maildir):
        if os.path.basename(root) not in ("new", "cur"):
            continue
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                msg = email.message_from_binary_file(f)
            tok = msg.get("X-Test-Token")
            if tok:
                print(tok)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def smtp_opts(sp):
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--starttls", action="store_true")
        sp.add_argument("--ssl", action="store_true")
        sp.add_argument("--auth", help="user:password")
        sp.add_argument("--timeout", type=float, default=30)
        sp.add_argument("--source", help="local address in 127.0.0.0/8")

    def msg_opts(sp):
        sp.add_argument("--from", dest="sender", default="sender@client.test")
        sp.add_argument("--to", action="append", required=True)
        sp.add_argument("--subject", default="test message")
        sp.add_argument("--body", default="Hello from the test suite.")
        sp.add_argument("--header", action="append")
        sp.add_argument("--size", type=int, default=0,
                        help="pad the body to about this many bytes")

    sp = sub.add_parser("send")
    smtp_opts(sp)
    msg_opts(sp)
    sp.add_argument("--token")
    sp.set_defaults(func=cmd_send)

    sp = sub.add_parser("ehlo")
    smtp_opts(sp)
    sp.set_defaults(func=cmd_ehlo)

    sp = sub.add_parser("load")
    smtp_opts(sp)
    msg_opts(sp)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--concurrency", type=int, default=10)
    sp.add_argument("--max-seconds", type=float, default=300)
    sp.add_argument("--pace", type=float, default=0,
                    help="seconds between message starts per connection")
    sp.add_argument("--prefix", default="load")
    sp.add_argument("--out", required=True)
    sp.add_argument("--no-5xx", action="store_true",
                    help="exit 1 if any message got a 5xx reply")
    sp.set_defaults(func=cmd_load)

    sp = sub.add_parser("imap")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--user", required=True)
    sp.add_argument("--password", required=True)
    sp.add_argument("--timeout", type=float, default=30)
    sp.add_argument("--count", action="store_true")
    sp.add_argument("--tokens", action="store_true")
    sp.set_defaults(func=cmd_imap)

    sp = sub.add_parser("tokens")
    sp.add_argument("maildir")
    sp.set_defaults(func=cmd_tokens)

    args = p.parse_args()
    if getattr(args, "source", None) and not args.source.startswith("127."):
        p.error("--source must be a loopback address")
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()

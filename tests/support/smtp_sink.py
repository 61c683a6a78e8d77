"""A real SMTP server for the integration tests: accepts every message and appends it, parsed, as one JSON
line to a file. Standard library only (Python 3.11's smtpd; run with -W ignore for its deprecation note).

    python3 -W ignore tests/support/smtp_sink.py PORT OUTPUT_FILE

PORT 0 picks a free port. Once listening it prints "listening on PORT" on standard output.
"""

import asyncore
import email
import email.policy
import json
import smtpd
import sys


class Sink(smtpd.SMTPServer):
    def __init__(self, port, path):
        super().__init__(("127.0.0.1", port), None, decode_data=False)
        self.path = path

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        message = email.message_from_bytes(data, policy=email.policy.default)
        record = {
            "mail_from": mailfrom,
            "rcpt_to": rcpttos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "content_type": message.get_content_type(),
            "body": message.get_content(),
        }
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        return None


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    server = Sink(port, path)
    print("listening on %d" % server.socket.getsockname()[1], flush=True)
    asyncore.loop(timeout=0.2)


if __name__ == "__main__":
    main()

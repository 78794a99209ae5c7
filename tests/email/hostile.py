"""Malformed and hostile raw messages: each must be decided (or refused with a 4xx) and logged."""

from __future__ import annotations

import random

HEADERS = b"From: Peter Novak <p.novak@example.com>\r\nTo: housing@demo-homes.org.uk\r\n"


def _nested(depth: int) -> bytes:
    parts = [HEADERS + b"Subject: nested\r\nMIME-Version: 1.0\r\n"]
    for i in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode())
    parts.append(b"Content-Type: text/plain\r\n\r\ndeep down\r\n")
    for i in reversed(range(depth)):
        parts.append(f"--b{i}--\r\n".encode())
    return b"".join(parts)


def corpus() -> dict[str, bytes]:
    rnd = random.Random(7)
    return {
        "empty": b"",
        "garbage": bytes(rnd.randrange(256) for _ in range(4096)),
        "headers only": HEADERS + b"Subject: no body",
        "no headers": b"\r\n\r\njust a body\r\n",
        "no from": b"Subject: who am I\r\n\r\nbody\r\n",
        "broken boundary": HEADERS + b'Subject: x\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
        b"Content-Type: text/plain\r\n\r\nnever closed",
        "no boundary": HEADERS + b"Subject: x\r\nContent-Type: multipart/alternative\r\n\r\n--a\r\nhello\r\n--a--\r\n",
        "bad base64": HEADERS + b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64@@@\r\n",
        "bad charset": HEADERS + b"Subject: x\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\nhi\r\n",
        "bad encoded word": HEADERS + b"Subject: =?x-nope?B?!!!?= =?utf-8?Q?=ZZ?=\r\n\r\nhi\r\n",
        "8-bit headers": b"From: J\xf6rg M\xfcller <j\xf6rg@example.com>\r\n"
        b"Subject: caf\xe9 \xff\xfe \xc3\x28\r\n\r\nbody \xff\r\n",
        "NUL bytes": HEADERS + b"Subject: a\x00b\r\nMessage-ID: <n\x00l@x>\r\n\r\nbo\x00dy\r\n",
        "1000 headers": HEADERS
        + b"".join(f"X-Filler-{i}: {'v' * 50}\r\n".encode() for i in range(1000))
        + b"Subject: many headers\r\n\r\nbody\r\n",
        "CR/LF in subject": HEADERS + b"Subject: =?utf-8?Q?RE=3A_CMP-2041=0D=0ABcc=3A_x=40evil=2Eexample?=\r\n"
        b"X-Bare-CR: a\rBcc: y@evil.example\r\n\r\nbody\r\n",
        "10 MB single line body": HEADERS + b"Subject: long line\r\n\r\n" + b"A" * (10 * 1024 * 1024),
        "10 MB single line header": HEADERS + b"Subject: " + b"B" * (10 * 1024 * 1024) + b"\r\n\r\nbody\r\n",
        "100 deep multipart": _nested(100),
        "backtracking subject": HEADERS
        + b"Subject: RE: "
        + b"A" * 900
        + b"-"
        + b"1" * 60
        + b"!"
        + b"[" * 30
        + b"\r\n\r\nx",
        "backtracking subject 2": HEADERS + b"Subject: " + b"A-" * 450 + b"\r\n\r\nx",
        "huge message id": HEADERS + b"Message-ID: <" + b"m" * 5000 + b"@x>\r\nSubject: id\r\n\r\nx",
        "many recipients": b"From: p.novak@example.com\r\nTo: "
        + b", ".join(f"r{i}@example.com".encode() for i in range(2000))
        + b"\r\nSubject: many\r\n\r\nx",
        "many references": HEADERS
        + b"References: "
        + b" ".join(f"<r{i}@x>".encode() for i in range(5000))
        + b"\r\n\r\nx",
        "address with encoded word": b"From: =?utf-8?Q?attacker?=@example.com <a@b.example>\r\nSubject: x\r\n\r\nx",
        "unterminated address": b"From: <p.novak@example.com\r\nSubject: x\r\n\r\nx",
        "many parts": HEADERS
        + b'Subject: parts\r\nContent-Type: multipart/mixed; boundary="p"\r\n\r\n'
        + b"".join(b"--p\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n" for _ in range(2000))
        + b"--p--\r\n",
        "html only": HEADERS
        + b"Subject: html\r\nContent-Type: text/html\r\n\r\n<p>Hello<script>evil()</script></p>"
        + b"<div>" * 5000,
    }

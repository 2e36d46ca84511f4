#!/usr/bin/python3
# faultdns.py -- a scripted misbehaving authoritative DNS server for the loopback test-bed.
#
# usage: /usr/bin/python3 tests/faults/faultdns.py [--addr 127.0.10.6] [--port 53]
#            [--zone faults.example.net] [--lame lame.example.net]
#            [--log FILE] [--pidfile FILE]
#
# Serves, unsigned, the zone --zone (default faults.example.net) over UDP and TCP.  The label
# directly under the zone picks the behaviour; anything after a '-' in it is ignored, so
# "drop-17.faults.example.net" drops like "drop.faults.example.net" but is a fresh name for the
# resolver's caches (a deeper name such as x.drop.faults.example.net behaves like drop.* too,
# which keeps qname minimisation consistent):
#
#   ok           A 45.67.89.77 (the control); other types NODATA with the SOA
#   drop         never answers (UDP or TCP)
#   delayNNNms   the ok answer after NNN milliseconds; delayNs after N seconds (delay2s, delay200ms)
#   servfail     rcode SERVFAIL
#   refused      rcode REFUSED
#   formerr      rcode FORMERR
#   truncate     over UDP: TC=1 and nothing else, even for a small answer; over TCP: the ok answer
#   garbage      random bytes (the query's ID, then noise), over UDP and TCP
#   badid        an answer with forged data (A 45.67.89.251) and a wrong message ID
#   badq         an answer with the right ID for another question name (A 45.67.89.252)
#   once         the ok answer with TTL 1 the first time a (name, type) is asked, then never
#                again (drop): for serve-stale tests
#   nxdomain     NXDOMAIN with the SOA
#   anything else under the zone: NXDOMAIN with the SOA
#
# The apex has SOA and NS ns.<zone>; ns.<zone> has A <addr>.  Questions for the --lame zone
# (default lame.example.net, delegated to this server and to a dead address) get REFUSED, as do
# questions for any other zone: a lame delegation.
#
# Logs every query and what was done to --log (default stderr); writes --pidfile; exits 0 on
# SIGTERM or SIGINT.  Needs dnspython (Debian: python3-dnspython, hence /usr/bin/python3).
# Network: binds and answers only on a 127.0.10.0/24 address.

import argparse
import heapq
import ipaddress
import logging
import os
import random
import re
import selectors
import signal
import socket
import sys
import threading
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

OK_ADDR = "45.67.89.77"
BADID_ADDR = "45.67.89.251"
BADQ_ADDR = "45.67.89.252"
TTL = 60
TCP_IDLE = 30.0

log = logging.getLogger("faultdns")


class Faults:
    """Decides, for one query, what to send back and when."""

    def __init__(self, zone, lame, addr):
        self.zone = dns.name.from_text(zone)
        self.lame = dns.name.from_text(lame)
        self.addr = addr
        self.ns = dns.name.from_text("ns", self.zone)
        self.soa = dns.rrset.from_text(self.zone, TTL, "IN", "SOA",
                                       "%s hostmaster.%s 1 3600 900 604800 %d" % (self.ns, self.zone, TTL))
        self.nsset = dns.rrset.from_text(self.zone, TTL, "IN", "NS", self.ns.to_text())
        self.asked = set()  # (name, type) already answered by "once"
        self.lock = threading.Lock()

    def behaviour(self, qname):
        """The behaviour keyword and its delay in seconds for qname (None: not in our zone)."""
        if not qname.is_subdomain(self.zone):
            return ("lame" if qname.is_subdomain(self.lame) else "refused-other"), 0.0
        rel = qname.relativize(self.zone)
        if rel == dns.name.empty:
            return "apex", 0.0
        label = rel.labels[-1].decode("ascii", "replace").lower().split("-", 1)[0]
        if qname == self.ns:
            return "ns", 0.0
        m = re.fullmatch(r"delay(\d+)(ms|s)", label)
        if m:
            n = int(m.group(1))
            return "delay", (n / 1000.0 if m.group(2) == "ms" else float(n))
        if label in ("ok", "once", "drop", "servfail", "refused", "formerr", "truncate", "garbage",
                     "badid", "badq", "nxdomain"):
            return label, 0.0
        return "other", 0.0

    def _response(self, q, rcode=dns.rcode.NOERROR, aa=True):
        r = dns.message.make_response(q, our_payload=1232)
        if aa:
            r.flags |= dns.flags.AA
        r.set_rcode(rcode)
        return r

    def _positive(self, q, addr, ttl=TTL):
        """The answer for q's name: A addr for A questions, else NODATA with the SOA."""
        r = self._response(q)
        qname, qtype = q.question[0].name, q.question[0].rdtype
        if qtype == dns.rdatatype.A:
            r.answer.append(dns.rrset.from_text(qname, ttl, "IN", "A", addr))
        else:
            r.authority.append(self.soa)
        return r

    def _nxdomain(self, q):
        r = self._response(q, dns.rcode.NXDOMAIN)
        r.authority.append(self.soa)
        return r

    def handle(self, wire, tcp):
        """(reply bytes or None for no reply, delay in seconds, description) for one query."""
        try:
            q = dns.message.from_wire(wire)
        except dns.exception.DNSException as e:
            if len(wire) >= 12:
                # Echo the header with QR and FORMERR, as an authoritative server does.
                hdr = bytearray(wire[:12])
                hdr[2] = (hdr[2] | 0x80) & 0xF9
                hdr[3] = dns.rcode.FORMERR
                hdr[4:12] = b"\0" * 8
                return bytes(hdr), 0.0, "unparsable query (%s): FORMERR" % e.__class__.__name__
            return None, 0.0, "unparsable runt query: dropped"
        if q.flags & dns.flags.QR:
            return None, 0.0, "a response, not a query: dropped"
        if q.opcode() != dns.opcode.QUERY:
            return self._response(q, dns.rcode.NOTIMP, aa=False).to_wire(), 0.0, "opcode: NOTIMP"
        if len(q.question) != 1:
            return self._response(q, dns.rcode.FORMERR, aa=False).to_wire(), 0.0, "no single question: FORMERR"
        qname, qtype = q.question[0].name, q.question[0].rdtype
        kind, delay = self.behaviour(qname)

        if kind in ("lame", "refused-other"):
            return self._response(q, dns.rcode.REFUSED, aa=False).to_wire(), 0.0, kind + ": REFUSED"
        if kind == "apex":
            r = self._response(q)
            if qtype == dns.rdatatype.SOA:
                r.answer.append(self.soa)
            elif qtype == dns.rdatatype.NS:
                r.answer.append(self.nsset)
                r.additional.append(dns.rrset.from_text(self.ns, TTL, "IN", "A", self.addr))
            else:
                r.authority.append(self.soa)
            return r.to_wire(), 0.0, "apex"
        if kind == "ns":
            return self._positive(q, self.addr).to_wire(), 0.0, "ns"
        if kind == "drop":
            return None, 0.0, "drop"
        if kind == "ok":
            return self._positive(q, OK_ADDR).to_wire(), 0.0, "ok"
        if kind == "once":
            key = (qname.to_text().lower(), qtype)
            with self.lock:
                first = key not in self.asked
                self.asked.add(key)
            if first:
                return self._positive(q, OK_ADDR, ttl=1).to_wire(), 0.0, "once: first time, TTL 1"
            return None, 0.0, "once: asked before, drop"
        if kind == "delay":
            return self._positive(q, OK_ADDR).to_wire(), delay, "delay %.3fs" % delay
        if kind == "servfail":
            return self._response(q, dns.rcode.SERVFAIL, aa=False).to_wire(), 0.0, "SERVFAIL"
        if kind == "refused":
            return self._response(q, dns.rcode.REFUSED, aa=False).to_wire(), 0.0, "REFUSED"
        if kind == "formerr":
            return self._response(q, dns.rcode.FORMERR, aa=False).to_wire(), 0.0, "FORMERR"
        if kind == "truncate":
            if tcp:
                return self._positive(q, OK_ADDR).to_wire(), 0.0, "truncate: full answer over TCP"
            r = self._response(q)
            r.flags |= dns.flags.TC
            return r.to_wire(), 0.0, "truncate: TC=1 over UDP"
        if kind == "garbage":
            n = random.randint(1, 300)
            return wire[:2] + os.urandom(n), 0.0, "garbage (%d random bytes after the ID)" % n
        if kind == "badid":
            r = self._positive(q, BADID_ADDR)
            r.id = q.id ^ random.randint(1, 0xFFFF)
            return r.to_wire(), 0.0, "badid: ID %d instead of %d" % (r.id, q.id)
        if kind == "badq":
            r = self._response(q)
            other = dns.name.from_text("forged", self.zone)
            r.question = [dns.rrset.RRset(other, dns.rdataclass.IN, qtype)]
            r.answer.append(dns.rrset.from_text(other, TTL, "IN", "A", BADQ_ADDR))
            return r.to_wire(), 0.0, "badq: answer for %s" % other
        return self._nxdomain(q).to_wire(), 0.0, kind + ": NXDOMAIN"


def describe(wire):
    try:
        q = dns.message.from_wire(wire)
        return "%s %s id=%d" % (q.question[0].name, dns.rdatatype.to_text(q.question[0].rdtype), q.id)
    except Exception:  # only for the log line
        return "(%d bytes)" % len(wire)


class Server:
    def __init__(self, faults, addr, port):
        self.faults = faults
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp.bind((addr, port))
        self.udp.setblocking(False)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((addr, port))
        self.tcp.listen(128)
        self.tcp.setblocking(False)
        self.timers = []  # (due, seq, bytes, peer): delayed UDP replies
        self.seq = 0
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.udp, selectors.EVENT_READ, "udp")
        self.sel.register(self.tcp, selectors.EVENT_READ, "tcp")

    def on_udp(self):
        for _ in range(64):
            try:
                wire, peer = self.udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("udp recv: %s", e)
                return
            try:
                reply, delay, what = self.faults.handle(wire, tcp=False)
            except Exception:
                log.exception("udp %s: handler failed", peer)
                continue
            log.info("udp %s:%d %s -> %s", peer[0], peer[1], describe(wire), what)
            if reply is None:
                continue
            if delay > 0:
                self.seq += 1
                heapq.heappush(self.timers, (time.monotonic() + delay, self.seq, reply, peer))
            else:
                self.send_udp(reply, peer)

    def send_udp(self, reply, peer):
        try:
            self.udp.sendto(reply, peer)
        except OSError as e:
            log.warning("udp send to %s: %s", peer, e)

    def on_accept(self):
        try:
            conn, peer = self.tcp.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log.warning("tcp accept: %s", e)
            return
        t = threading.Thread(target=self.tcp_conn, args=(conn, peer), daemon=True)
        t.start()

    def tcp_conn(self, conn, peer):
        """One TCP connection: length-prefixed queries, answered in order (delays block it)."""
        conn.setblocking(True)
        conn.settimeout(TCP_IDLE)
        try:
            buf = b""
            while True:
                while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                    chunk = conn.recv(65535)
                    if not chunk:
                        return
                    buf += chunk
                n = int.from_bytes(buf[:2], "big")
                wire, buf = buf[2:2 + n], buf[2 + n:]
                try:
                    reply, delay, what = self.faults.handle(wire, tcp=True)
                except Exception:
                    log.exception("tcp %s: handler failed", peer)
                    continue
                log.info("tcp %s:%d %s -> %s", peer[0], peer[1], describe(wire), what)
                if reply is None:
                    continue
                if delay > 0:
                    time.sleep(delay)
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except (OSError, socket.timeout) as e:
            log.info("tcp %s:%d closed: %s", peer[0], peer[1], e)
        finally:
            conn.close()

    def run(self):
        while True:
            timeout = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            for key, _ in self.sel.select(timeout):
                if key.data == "udp":
                    self.on_udp()
                else:
                    self.on_accept()
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, reply, peer = heapq.heappop(self.timers)
                self.send_udp(reply, peer)


def main():
    ap = argparse.ArgumentParser(description="misbehaving authoritative DNS server for the test-bed")
    ap.add_argument("--addr", default="127.0.10.6")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--zone", default="faults.example.net")
    ap.add_argument("--lame", default="lame.example.net")
    ap.add_argument("--log", default=None, help="log file (default: stderr)")
    ap.add_argument("--pidfile", default=None)
    args = ap.parse_args()

    if ipaddress.ip_address(args.addr) not in ipaddress.ip_network("127.0.10.0/24"):
        sys.exit("faultdns: refusing to listen outside 127.0.10.0/24: %s" % args.addr)

    logging.basicConfig(filename=args.log, level=logging.INFO,
                        format="%(asctime)s.%(msecs)03d faultdns[%(process)d] %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")

    def on_signal(signum, frame):
        log.info("signal %d: exiting", signum)
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
        logging.shutdown()
        os._exit(0)  # TCP threads may sit in recv: do not wait for them

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        server = Server(Faults(args.zone, args.lame, args.addr), args.addr, args.port)
    except OSError as e:
        log.error("cannot bind %s:%d: %s", args.addr, args.port, e)
        sys.exit("faultdns: cannot bind %s:%d: %s" % (args.addr, args.port, e))
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(args.pidfile + ".tmp", args.pidfile)
    log.info("listening on %s:%d udp+tcp, zone %s, lame %s", args.addr, args.port, args.zone, args.lame)
    server.run()


if __name__ == "__main__":
    main()

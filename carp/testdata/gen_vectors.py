#!/usr/bin/env python3
"""Golden CARPv2 advertisements, computed without pfcarp's Go code.

Run: python3 gen_vectors.py > vectors.json

Uses only the Python standard library (hmac, hashlib, struct, ipaddress) and
the facts of FreeBSD/OpenBSD sys/netinet/ip_carp.c:
  key    = passphrase cut to 19 bytes (strlcpy into a 20-byte buffer), NUL-padded to 20
  msg    = 0x02 0x01 vhid | IPv4 VIPs ascending | IPv6 VIPs ascending | counter (8 bytes, big endian)
           (duplicates once; link-local IPv6 left out in the "sign" form, included with
            bytes 2-3 zeroed in the "with_ll" form)
  md     = HMAC-SHA1(key, msg)
  header = 0x21 vhid advskew 7 demote advbase cksum(2) counter(8) md(20)
  cksum  = RFC 1071 Internet checksum of the 36 header bytes with cksum = 0
"""
import hashlib
import hmac
import ipaddress
import json
import struct


def key_of(passphrase):
    raw = passphrase.encode()
    raw = raw.split(b"\0", 1)[0][:19]
    return raw + b"\0" * (20 - len(raw))


def is_scoped(a):
    # fe80::/10, or multicast with scope 1 (interface-local) or 2 (link-local)
    return (a[0] == 0xFE and a[1] & 0xC0 == 0x80) or (a[0] == 0xFF and a[1] & 0x0F in (1, 2))


def message(vhid, vips, with_ll):
    v4, v6 = set(), set()
    for s in vips:
        ip = ipaddress.ip_address(s)
        if ip.version == 4:
            v4.add(ip.packed)
        else:
            b = bytearray(ip.packed)
            if is_scoped(b):
                if not with_ll:
                    continue
                b[2] = b[3] = 0
            v6.add(bytes(b))
    v4 = [b for b in sorted(v4) if b not in (b"\0" * 4, b"\xff" * 4)]
    v6 = [b for b in sorted(v6) if b not in (b"\0" * 16, b"\xff" * 16)]
    return bytes([2, 1, vhid]) + b"".join(v4) + b"".join(v6)


def cksum(data):
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def vector(name, passphrase, vhid, advbase, advskew, demote, counter, vips):
    key = key_of(passphrase)
    ctr = struct.pack(">Q", counter)
    md = hmac.new(key, message(vhid, vips, False) + ctr, hashlib.sha1).digest()
    md_ll = hmac.new(key, message(vhid, vips, True) + ctr, hashlib.sha1).digest()
    hdr = bytearray(struct.pack(">BBBBBBH", 0x21, vhid, advskew, 7, demote, advbase, 0) + ctr + md)
    struct.pack_into(">H", hdr, 6, cksum(hdr))
    assert cksum(hdr) == 0
    return {
        "name": name,
        "pass": passphrase,
        "vhid": vhid,
        "advbase": advbase,
        "advskew": advskew,
        "demote": demote,
        "counter": "%016x" % counter,
        "vips": vips,
        "key": key.hex(),
        "hmac": md.hex(),
        "hmac_with_ll": md_ll.hex(),
        "packet": bytes(hdr).hex(),
    }


VECTORS = [
    vector("seed carp0: one IPv4 VIP", "11111", 1, 1, 10, 0, 0x0102030405060708,
           ["192.168.1.51"]),
    vector("seed carp1 on the slave", "11111", 1, 1, 20, 0, 0xFFFFFFFF00000001,
           ["192.168.10.100"]),
    vector("IPv4, unsorted with a duplicate", "secret", 2, 1, 0, 0, 0x8000000000000000,
           ["203.0.113.9", "192.0.2.1", "203.0.113.9", "198.51.100.200"]),
    vector("IPv4+IPv6, link-local skipped, 19-byte key", "abcdefghijklmnopqrs", 7, 3, 100, 0,
           0x00000000DEADBEEF,
           ["198.51.100.7", "2001:db8::20", "fe80::1", "2001:db8::10"]),
    vector("key longer than 19 bytes is cut like strlcpy", "abcdefghijklmnopqrstuvwxyz", 7, 3, 100, 0,
           0x00000000DEADBEEF,
           ["198.51.100.7", "2001:db8::20", "fe80::1", "2001:db8::10"]),
    vector("IPv6 only, advbase 0, OpenBSD demote byte", "pfcarp", 200, 0, 0, 3, 0x1122334455667788,
           ["2001:db8:1::1", "fe80:0:1234::9", "2001:db8::1"]),
    vector("bow-out 255/255, empty passphrase", "", 255, 255, 255, 255, 0,
           ["192.0.2.254"]),
]

if __name__ == "__main__":
    print(json.dumps(VECTORS, indent=1))

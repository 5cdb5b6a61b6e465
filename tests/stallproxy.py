#!/usr/bin/env python3
"""tests/stallproxy.py LISTEN_PORT TARGET_PORT CONTROL_FILE

A TCP proxy on 127.0.0.1 for fault tests: forwards every connection to
127.0.0.1:TARGET_PORT. When CONTROL_FILE holds "WORD SECONDS" (for example
"XACK 8"), the first client chunk that contains WORD stalls its connection:
nothing more crosses it, either way, for SECONDS; then it goes on as if the
network had only been slow. The control file is removed when it fires, so it
fires once. Other connections are never stalled.
"""
import os
import socket
import sys
import threading
import time


def pump(src, dst, ctl, stall):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if ctl is not None and os.path.exists(ctl):
                try:
                    with open(ctl) as f:
                        word, secs = f.read().split()
                    if word.encode() in data:
                        os.remove(ctl)
                        stall["until"] = time.time() + float(secs)
                except (OSError, ValueError):
                    pass
            while time.time() < stall["until"]:
                time.sleep(0.05)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listen_port, target_port, ctl):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(64)
    while True:
        c, _ = ls.accept()
        try:
            u = socket.create_connection(("127.0.0.1", target_port))
        except OSError:
            c.close()
            continue
        stall = {"until": 0.0}  # shared by both directions of one connection
        threading.Thread(target=pump, args=(c, u, ctl, stall), daemon=True).start()
        threading.Thread(target=pump, args=(u, c, None, stall), daemon=True).start()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])

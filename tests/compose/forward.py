#!/usr/bin/env python3
"""tests/compose/forward.py FD PORT... — make compose-demo's port forwarder
(podman, where the stack lives in a network namespace of its own).

Run inside the stack's namespace with FD an open descriptor of the host's
network namespace (/proc/self/ns/net, opened before the namespaces were
made): listens on 127.0.0.1:PORT in the host's namespace for each PORT, and
copies each connection to 127.0.0.1:PORT in its own, where the stack's
ports are published. A port already taken on the host is skipped and said
so. Prints "forwarding PORT..." once it listens; stops on SIGTERM. Only the
standard library.
"""
import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def setns(fd):
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listener, port):
    while True:
        client, _ = listener.accept()
        try:
            inner = socket.create_connection(("127.0.0.1", port), timeout=5)
            inner.settimeout(None)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, inner), daemon=True).start()
        threading.Thread(target=pipe, args=(inner, client), daemon=True).start()


def main():
    host_fd, ports = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    # a socket stays in the namespace it was made in: make the listeners
    # in the host's, then come back (before any other thread exists)
    setns(host_fd)
    listeners, taken = [], []
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(64)
            listeners.append((s, port))
        except OSError:
            s.close()
            taken.append(port)
    setns(own)
    os.close(own)
    for port in taken:
        print("port %d is taken on this machine: not forwarded" % port, flush=True)
    print("forwarding " + " ".join(str(p) for _, p in listeners), flush=True)
    threads = [threading.Thread(target=serve, args=lp, daemon=True) for lp in listeners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


main()

#!/usr/bin/env python3
"""Upload flood against a real `guild-sync serve` (issue 15, item 7): CLIENTS clients post the
same export for SECONDS seconds, then the script waits until the newest accepted upload's run
has finished (the drain) and reads the server's peak memory (VmHWM).

    python3 scripts/upload-burst.py BINARY [UPLOAD.json] [--clients 8] [--seconds 10]
        [--per-minute N]

BINARY is a `guild-sync` build (release, for figures). The server runs with its own private
cluster under a fresh temporary GUILD_SYNC_DATA_DIR, so nothing else is touched. `--per-minute`
sets GUILD_SYNC_UPLOADS_PER_MINUTE (0: no limit; omitted: the binary's default). Prints the
counts of 202 (accepted), superseded (accepted, then replaced while waiting), 429 and other
answers, the drain time and VmRSS/VmHWM of the server process.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

KEY = "burst-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return fields


def post(url, body):
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, {}
    except OSError:
        return 0, {}


def get(url):
    request = urllib.request.Request(url, headers={"X-API-Key": KEY})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("upload", nargs="?",
                        default="/work/shared/samples/original-companion-upload.json")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--per-minute", type=int)
    args = parser.parse_args()
    body = open(args.upload, "rb").read()
    args.binary = os.path.abspath(args.binary)

    data_dir = tempfile.mkdtemp(prefix="guild-sync-burst-")
    os.chmod(data_dir, 0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"GUILD_SYNC_DATA_DIR": os.path.join(data_dir, "data"),
                "GUILD_SYNC_BIND": f"127.0.0.1:{port}",
                "GUILD_SYNC_API_KEY": KEY,
                "RUST_LOG": "warn"})
    if args.per_minute is not None:
        env["GUILD_SYNC_UPLOADS_PER_MINUTE"] = str(args.per_minute)
    server = subprocess.Popen([args.binary, "serve"], env=env, cwd=data_dir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                get(base + "/api/guild-sync/addon-upload/status")
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("the server did not start")
                time.sleep(0.2)
        idle = memory(server.pid)

        answers = []
        lock = threading.Lock()
        stop_at = time.time() + args.seconds

        def client():
            while time.time() < stop_at:
                status, answer = post(base + "/api/guild-sync/addon-upload", body)
                with lock:
                    answers.append((time.time(), status, answer))

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        flood_end = time.time()

        accepted = [a for _, s, a in answers if s == 202]
        superseded = sum(1 for a in accepted if a.get("replaced_run_id"))
        limited = sum(1 for _, s, _ in answers if s == 429)
        other = {}
        for _, s, _ in answers:
            if s not in (202, 429):
                other[s] = other.get(s, 0) + 1
        newest = max((a["run_id"] for a in accepted), default=None)
        while newest is not None:
            last = get(base + "/api/guild-sync/addon-upload/status")["last_upload"]
            if last and last["run_id"] >= newest and last["status"] != "running":
                break
            time.sleep(0.1)
        drained = time.time()
        mem = memory(server.pid)
        print(json.dumps({
            "binary": args.binary,
            "clients": args.clients, "seconds": args.seconds,
            "per_minute": args.per_minute,
            "requests": len(answers), "accepted_202": len(accepted),
            "superseded": superseded, "too_many_requests_429": limited, "other": other,
            "flood_seconds": round(flood_end - started, 1),
            "drain_seconds_after_flood": round(drained - flood_end, 1),
            "idle_vmrss_kb": idle["VmRSS"], "end_vmrss_kb": mem["VmRSS"],
            "peak_vmhwm_kb": mem["VmHWM"],
        }, indent=1))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""A stand-in for the application you protect: it answers every request with the identity headers
nextAuth gave it. Standard library only, so it runs with any Python 3.

    python3 traefik-plugin/example_app.py 8090
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IDENTITY = ("Remote-User", "Remote-Name", "Remote-Email", "Remote-Groups", "Remote-Auth-Method")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        lines = [f"You asked for {self.path}", ""]
        for name in IDENTITY:
            value = self.headers.get(name)
            # HTTP headers arrive as bytes; nextAuth sends UTF-8 (names like "Zoë").
            shown = "(not sent)" if value is None else value.encode("latin-1").decode("utf-8", "replace")
            lines.append(f"{name}: {shown}")
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8090
    print(f"example application on http://127.0.0.1:{port}/ (reach it through Traefik)", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()

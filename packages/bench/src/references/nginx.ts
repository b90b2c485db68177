import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * nginx as a reference pass-through: one worker (one core), a keep-alive
 * upstream pool, no response or request buffering (SSE flows event by event),
 * a buffered access log (the apt proxy logs every request too).
 * `@PORT@`, `@UPSTREAM@` (host:port) and `@DIR@` are filled in by the shell
 * command below when the target starts.
 */
export const NGINX_CONFIG_TEMPLATE = `worker_processes 1;
daemon off;
pid @DIR@/nginx-@PORT@.pid;
error_log stderr warn;
events { worker_connections 8192; }
http {
  access_log @DIR@/nginx-@PORT@-access.log combined buffer=64k flush=1s;
  client_body_temp_path @DIR@/nginx-@PORT@-body;
  proxy_temp_path @DIR@/nginx-@PORT@-proxy;
  fastcgi_temp_path @DIR@/nginx-@PORT@-fastcgi;
  uwsgi_temp_path @DIR@/nginx-@PORT@-uwsgi;
  scgi_temp_path @DIR@/nginx-@PORT@-scgi;
  client_max_body_size 32m;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  upstream anthropic {
    server @UPSTREAM@;
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:@PORT@;
    location / {
      proxy_pass http://anthropic;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
    }
  }
}
`

/** True when an `nginx` binary runs. */
export function nginxInstalled(): boolean {
  return spawnSync('nginx', ['-v'], { stdio: 'ignore' }).status === 0
}

/**
 * Writes the template into `directory` and returns the `--compare` command that
 * renders it for `$PORT`/`$UPSTREAM_URL` and runs nginx in the foreground.
 * As root, workers run as root too so they can use the private temp directory.
 */
export function nginxCommand(directory: string): string {
  const template = join(directory, 'nginx.conf.template')
  writeFileSync(template, NGINX_CONFIG_TEMPLATE)
  const conf = `${directory}/nginx-$PORT.conf`
  return [
    // Shell parameter expansion (not a template placeholder): UPSTREAM_URL without its scheme.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expression
    'upstream_hostport="${UPSTREAM_URL#http://}"',
    `{ if [ "$(id -u)" = 0 ]; then echo "user root;"; fi; sed -e "s|@PORT@|$PORT|g" -e "s|@UPSTREAM@|$upstream_hostport|g" -e "s|@DIR@|${directory}|g" '${template}'; } > "${conf}"`,
    `exec nginx -p '${directory}' -c "${conf}"`,
  ].join(' && ')
}

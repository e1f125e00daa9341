// HAProxy and nginx, configured to route like the Baton rows (path "/" -> one pool of one back end) with
// the fair settings of research/benchmarking.md: HAProxy `http-reuse always`, 1 thread; nginx 1 worker,
// HTTP/1.1 upstream keep-alive >= the client concurrency, keepalive_requests high, proxy buffers that hold
// a 64 KiB body and no temp-file spill. Configs are written per run into the run's temp dir.
import fs from 'node:fs'
import path from 'node:path'
import { startChild, which, type Child } from './process'

export interface PeerSettings {
  readonly dir: string
  readonly port: number
  readonly backendPort: number
  /** Client connections a row may hold at once (the idle scenario's count, plus margin). */
  readonly maxConns: number
  /** The load scenarios' client concurrency. */
  readonly connections: number
  /** The open-file limit the balancer inherits. */
  readonly fdLimit: number
}

export const INSTALL_HINT = 'apt-get install -y haproxy nginx-light wrk'

export function haproxyConfig (mode: 'http' | 'tcp', s: PeerSettings): string {
  const routing = mode === 'http'
    ? ['  use_backend web if { path_beg / }']
    // tcp mode: wait for the first request head and route on it (like Baton's splice: peek, route, relay).
    : ['  tcp-request inspect-delay 5s', '  tcp-request content accept if HTTP', '  use_backend web if { path_beg / }']
  return [
    'global',
    `  maxconn ${s.maxConns}`,
    // maxconn above half the fd limit makes HAProxy refuse to start (it reserves two fds per connection);
    // with `no strict-limits` it only warns, and the idle scenario holds one client fd per connection.
    '  no strict-limits',
    '  nbthread 1',
    '  tune.bufsize 16384',
    'defaults',
    `  mode ${mode}`,
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    ...(mode === 'http' ? ['  timeout http-keep-alive 60s', '  http-reuse always'] : []),
    'frontend fe',
    `  bind 127.0.0.1:${s.port}`,
    `  maxconn ${s.maxConns}`,
    ...routing,
    '  default_backend web',
    'backend web',
    '  balance roundrobin',
    `  server b1 127.0.0.1:${s.backendPort}`,
    ''
  ].join('\n')
}

export function nginxConfig (s: PeerSettings): string {
  const d = s.dir
  return `worker_processes 1;
daemon off;
pid ${d}/nginx.pid;
error_log ${d}/nginx-error.log warn;
worker_rlimit_nofile ${s.fdLimit};
events { worker_connections ${s.fdLimit - 100}; }
http {
  access_log off;
  client_body_temp_path ${d}/nginx-body;
  proxy_temp_path ${d}/nginx-proxy;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  upstream web {
    server 127.0.0.1:${s.backendPort};
    keepalive ${Math.max(64, s.connections * 2)};
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${s.port} backlog=4096;
    location / {
      proxy_pass http://web;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
      proxy_busy_buffers_size 32k;
      proxy_max_temp_file_size 0;
    }
  }
}
`
}

/** Starts HAProxy; undefined when it is not installed. */
export function startHaproxy (mode: 'http' | 'tcp', s: PeerSettings): Child | undefined {
  const bin = which('haproxy')
  if (bin === undefined) return undefined
  const file = path.join(s.dir, `haproxy-${mode}.cfg`)
  fs.writeFileSync(file, haproxyConfig(mode, s))
  return startChild(`haproxy (${mode})`, bin, ['-f', file, '-db'])
}

/** Starts nginx (master + 1 worker, foreground); undefined when it is not installed. */
export function startNginx (s: PeerSettings): Child | undefined {
  const bin = which('nginx')
  if (bin === undefined) return undefined
  const file = path.join(s.dir, 'nginx.conf')
  fs.writeFileSync(file, nginxConfig(s))
  // -e: the error log before the config is read (the default one may not be writable).
  return startChild('nginx', bin, ['-c', file, '-p', s.dir, '-e', path.join(s.dir, 'nginx-error.log')])
}

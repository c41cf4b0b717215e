/**
 * The charts of the dashboard, as PromQL over the metrics every process
 * serves. Only these named queries are sent on to Prometheus: the dashboard
 * is not an open proxy.
 */
export const charts: Record<string, { title: string; unit: string; queries: Record<string, string> }> = {
  requests: {
    title: 'Requests per second (web servers)',
    unit: 'req/s',
    queries: {
      total: 'sum(rate(http_requests_total[10s]))',
      '5xx': 'sum(rate(http_request_errors_total[10s])) or vector(0)',
    },
  },
  webTier: {
    title: 'Web servers and the autoscaler metric (requests in flight per server)',
    unit: '',
    queries: {
      servers: 'max(scaleout_web_servers)',
      'in flight per server': 'max(scaleout_autoscaler_in_flight_per_server)',
      target: 'max(scaleout_autoscaler_target{tier="web"})',
      restarts: 'sum(scaleout_process_restarts_total) or vector(0)',
    },
  },
  latency: {
    title: 'Latency (web servers)',
    unit: 'ms',
    queries: {
      p50: '1000 * histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket[10s])))',
      p99: '1000 * histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[10s])))',
    },
  },
  errors: {
    title: 'Error ratio (5xx / all)',
    unit: '%',
    queries: {
      errors:
        '100 * (sum(rate(http_request_errors_total[10s])) or vector(0)) / clamp_min(sum(rate(http_requests_total[10s])), 0.001)',
    },
  },
  cache: {
    title: 'Cache hit ratio',
    unit: '%',
    queries: {
      hits: '100 * sum(rate(scaleout_cache_hits[10s])) / clamp_min(sum(rate(scaleout_cache_hits[10s])) + sum(rate(scaleout_cache_misses[10s])), 0.001)',
    },
  },
  edge: {
    title: 'CDN edge hit ratio (Varnish)',
    unit: '%',
    queries: {
      hits: '100 * sum(rate(varnish_main_cache_hit[10s])) / clamp_min(sum(rate(varnish_main_cache_hit[10s])) + sum(rate(varnish_main_cache_miss[10s])), 0.001)',
    },
  },
  replication: {
    title: 'Replication lag (bytes, as the web servers see it)',
    unit: 'B',
    queries: { lag: 'max by (replica) (scaleout_replica_lag_bytes)' },
  },
  queue: {
    title: 'Queue depth (jobs)',
    unit: 'jobs',
    queries: Object.fromEntries(
      ['waiting', 'active', 'delayed', 'failed'].map((state) => [
        state === 'failed' ? 'dead letter' : state,
        // In-process queues add up; a shared one (BullMQ) is the same in every process.
        `(sum(scaleout_queue_jobs{state="${state}",shared="false"}) or vector(0)) + (max(scaleout_queue_jobs{state="${state}",shared="true"}) or vector(0))`,
      ]),
    ),
  },
  workers: {
    title: 'Workers and the autoscaler metric (jobs per worker slot)',
    unit: '',
    queries: {
      workers: 'max(scaleout_workers) or vector(0)',
      'jobs per slot': 'max(scaleout_autoscaler_jobs_per_worker_slot) or vector(0)',
      target: 'max(scaleout_autoscaler_target{tier="worker"})',
    },
  },
  timeToReady: {
    title: 'Upload to ready (photo variants made and fanned out)',
    unit: 's',
    queries: {
      p50: 'histogram_quantile(0.5, sum by (le) (rate(scaleout_photo_time_to_ready_seconds_bucket[1m])))',
      p99: 'histogram_quantile(0.99, sum by (le) (rate(scaleout_photo_time_to_ready_seconds_bucket[1m])))',
    },
  },
  redisMemory: {
    title: 'Redis memory (cache preset)',
    unit: 'B',
    queries: { used: 'max by (process) (redis_memory_used_bytes)' },
  },
  redisHits: {
    title: 'Redis hit ratio (cache preset)',
    unit: '%',
    queries: {
      hits: '100 * sum(rate(redis_keyspace_hits_total[10s])) / clamp_min(sum(rate(redis_keyspace_hits_total[10s])) + sum(rate(redis_keyspace_misses_total[10s])), 0.001)',
    },
  },
  redisEvictions: {
    title: 'Redis evictions (cache preset)',
    unit: 'keys/s',
    queries: { evicted: 'sum by (process) (rate(redis_evicted_keys_total[10s]))' },
  },
  redisRole: {
    title: 'Redis masters (1 = master, 0 = replica)',
    unit: '',
    queries: {
      master: 'max by (process) (redis_instance_info{role="master"}) or max by (process) (0 * redis_instance_info)',
    },
  },
  redisFailovers: {
    title: 'Redis failovers seen by the web servers (cache preset)',
    unit: '',
    queries: { failovers: 'max by (tier) (scaleout_redis_master_changes_total)' },
  },
  feedFanout: {
    title: "Feed fan-out lag, p99 (variants made → in the followers' feeds)",
    unit: 's',
    queries: {
      p99: 'histogram_quantile(0.99, sum by (le) (rate(scaleout_feed_fanout_lag_seconds_bucket[30s])))',
    },
  },
  dau: {
    title: 'Daily active users',
    unit: 'users',
    queries: { dau: 'max(scaleout_daily_active_users)' },
  },
};

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeConfig, loadConfig } from './config-load.ts';
import { optionDefinitions } from './config.ts';
import { ConfigError } from './errors.ts';

test('defaults match the Go tool', () => {
  const { config, sources } = loadConfig([], {});
  assert.deepEqual(config.listenAddr, { host: undefined, port: 8080 });
  assert.equal(config.stsName, 'buildkitd');
  assert.equal(config.stsNamespace, 'default');
  assert.equal(config.headlessServiceName, 'buildkitd-headless');
  assert.equal(config.targetPort, 8273);
  assert.equal(config.idleTimeoutMs, 120_000);
  assert.equal(config.readyWaitTimeoutMs, 300_000);
  assert.equal(config.kubeconfig, undefined);
  assert.deepEqual(config.metricsAddr, { host: undefined, port: 9090 });
  assert.equal(config.backendDiscovery, 'endpoints');
  assert.equal(sources.idleTimeoutMs, 'default');
});

test('env wins over flag, and an empty env var counts as unset', () => {
  const loaded = loadConfig(['--sts-name', 'from-flag', '--idle-timeout', '10s', '--target-port', '1234'], {
    BUILDKITD_STATEFULSET_NAME: 'from-env',
    SCALE_DOWN_IDLE_TIMEOUT: '',
  });
  assert.equal(loaded.config.stsName, 'from-env');
  assert.equal(loaded.sources.stsName, 'env');
  assert.equal(loaded.config.idleTimeoutMs, 10_000);
  assert.equal(loaded.sources.idleTimeoutMs, 'flag');
  assert.equal(loaded.config.targetPort, 1234);
  const described = describeConfig(loaded);
  assert.deepEqual(described['idleTimeoutMs'], {
    flag: '--idle-timeout',
    env: 'SCALE_DOWN_IDLE_TIMEOUT',
    value: '10s',
    source: 'flag',
  });
  assert.equal(described['kubeconfig']?.value, null);
});

test('each kind of bad value is one line naming flag, env var and value', () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['--idle-timeout', '5 minutes'], {}, /"5 minutes" for --idle-timeout \/ SCALE_DOWN_IDLE_TIMEOUT/],
    [[], { READY_WAIT_TIMEOUT: 'soon' }, /"soon" for --ready-wait-timeout \/ READY_WAIT_TIMEOUT \(from env\)/],
    [['--target-port', '0'], {}, /"0" for --target-port \/ BUILDKITD_TARGET_PORT.*at least 1/],
    [['--target-port', '65536'], {}, /"65536" for --target-port/],
    [
      ['--backend-discovery', 'consul'],
      {},
      /"consul" for --backend-discovery \/ BUILDKITD_BACKEND_DISCOVERY.*endpoints, dns/,
    ],
    [['--log-level', 'loud'], {}, /"loud" for --log-level \/ LOG_LEVEL/],
    [['--sts-name', ''], {}, /"" for --sts-name \/ BUILDKITD_STATEFULSET_NAME.*must not be empty/],
    [['--sts-namespace', 'Bad_NS'], {}, /"Bad_NS" for --sts-namespace/],
    [['--listen-addr', '8080'], {}, /"8080" for --listen-addr \/ PROXY_LISTEN_ADDR.*host:port/],
    [[], { METRICS_LISTEN_ADDR: ':99999' }, /":99999" for --metrics-addr \/ METRICS_LISTEN_ADDR/],
    [['--max-pending', '-1'], {}, /"-1" for --max-pending \/ PROXY_MAX_PENDING/],
    [['--idle-timeout', '0s'], {}, /"0s" for --idle-timeout.*greater than 0/],
    [['--shutdown-grace', '-5s'], {}, /"-5s" for --shutdown-grace \/ SHUTDOWN_GRACE_PERIOD/],
    [['--no-such-flag'], {}, /unknown option '--no-such-flag'/],
  ];
  for (const [argv, env, expected] of cases) {
    assert.throws(
      () => loadConfig(argv, env),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, `${argv.join(' ')} ${JSON.stringify(env)}`);
        assert.match(error.message, expected);
        assert.equal(error.message.includes('\n'), false);
        return true;
      },
    );
  }
});

test('listen addresses accept the Go forms', () => {
  assert.deepEqual(loadConfig(['--listen-addr', '127.0.0.1:0'], {}).config.listenAddr, { host: '127.0.0.1', port: 0 });
  assert.deepEqual(loadConfig(['--listen-addr', '[::1]:8080'], {}).config.listenAddr, { host: '::1', port: 8080 });
});

test('leader election: defaults as client-go, the lease name follows the StatefulSet, identity from POD_NAME', () => {
  const { config, sources } = loadConfig(['--sts-name', 'builders'], { POD_NAME: 'gw-abc' });
  assert.equal(config.leaderElection, true);
  assert.equal(config.leaderElectionLeaseName, 'builders-autoscaler');
  assert.equal(sources.leaderElectionLeaseName, 'default');
  assert.equal(config.leaderElectionLeaseDurationMs, 15_000);
  assert.equal(config.leaderElectionRenewDeadlineMs, 10_000);
  assert.equal(config.leaderElectionRetryPeriodMs, 2_000);
  assert.equal(config.identity, 'gw-abc');
  assert.equal(config.maxReportStalenessMs, 600_000);
  assert.equal(loadConfig(['--leader-election', 'false'], {}).config.leaderElection, false);
  assert.equal(loadConfig([], { LEADER_ELECTION: '0' }).config.leaderElection, false);
});

test('leader election timings that would let a healthy leader lose its Lease are refused, naming the flag', () => {
  assert.throws(
    () => loadConfig(['--leader-election-renew-deadline', '20s'], {}),
    (error: unknown) =>
      error instanceof ConfigError &&
      /"20s" for --leader-election-renew-deadline \/ LEADER_ELECTION_RENEW_DEADLINE .*less than the lease duration \(15s\)/.test(
        error.message,
      ),
  );
  assert.throws(
    () => loadConfig([], { LEADER_ELECTION_RETRY_PERIOD: '9s' }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /"9s" for --leader-election-retry-period \/ LEADER_ELECTION_RETRY_PERIOD \(from env\)/.test(error.message),
  );
  assert.throws(
    () => loadConfig([], { LEADER_ELECTION: 'yes' }),
    (error: unknown) => error instanceof ConfigError && /LEADER_ELECTION.*must be true or false/.test(error.message),
  );
  assert.throws(
    () => loadConfig([], { POD_NAME: 'Not_A_Name' }),
    (error: unknown) => error instanceof ConfigError && /--identity \/ POD_NAME/.test(error.message),
  );
});

test('the builder pool: defaults keep one builder (0 <-> 1), bad combinations are refused naming the flag', () => {
  const { config } = loadConfig([], {});
  assert.equal(config.maxReplicas, 1);
  assert.equal(config.minReplicas, 0);
  assert.equal(config.connectionsPerReplica, 8);
  assert.equal(config.affinity, 'client-ip');
  assert.equal(
    loadConfig(['--max-replicas', '3', '--min-replicas', '1', '--affinity', 'none'], {}).config.affinity,
    'none',
  );
  assert.throws(
    () => loadConfig(['--max-replicas', '2', '--min-replicas', '3'], {}),
    (e: unknown) =>
      e instanceof ConfigError &&
      /"3" for --min-replicas \/ BUILDKITD_MIN_REPLICAS \(from flag\): must not exceed --max-replicas \(2\)/.test(
        e.message,
      ),
  );
  assert.throws(
    () => loadConfig([], { BUILDKITD_MAX_REPLICAS: '0' }),
    (e: unknown) => e instanceof ConfigError && /BUILDKITD_MAX_REPLICAS/.test(e.message),
  );
  assert.throws(
    () => loadConfig([], { BUILDKITD_AFFINITY: 'sticky' }),
    (e: unknown) => e instanceof ConfigError && /--affinity \/ BUILDKITD_AFFINITY.*client-ip, none/.test(e.message),
  );
  assert.throws(
    () => loadConfig(['--backend-discovery', 'dns', '--max-replicas', '2'], {}),
    (e: unknown) =>
      e instanceof ConfigError &&
      /"dns" for --backend-discovery \/ BUILDKITD_BACKEND_DISCOVERY.*one builder only/.test(e.message),
  );
});

test('--max-pending-bytes takes bytes or Ki/Mi/Gi, defaults to 32Mi, and names itself when wrong', () => {
  assert.equal(loadConfig([], {}).config.maxPendingBytes, 32 * 1024 * 1024);
  const loaded = loadConfig(['--max-pending-bytes', '64Ki'], { PROXY_MAX_PENDING_BYTES: '2Mi' });
  assert.equal(loaded.config.maxPendingBytes, 2 * 1024 * 1024);
  assert.equal(describeConfig(loaded)['maxPendingBytes']?.value, '2Mi');
  assert.equal(loadConfig(['--max-pending-bytes', '65536'], {}).config.maxPendingBytes, 65_536);
  for (const bad of ['32MB', '-1', '1.5Mi', '100']) {
    assert.throws(
      () => loadConfig([], { PROXY_MAX_PENDING_BYTES: bad }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(
          error.message,
          new RegExp(`"${bad.replace('.', '\\.')}" for --max-pending-bytes / PROXY_MAX_PENDING_BYTES`),
        );
        return true;
      },
    );
  }
});

test('--wake-on defaults to data with a 30s first-byte timeout; connect restores the Go tool; bad values name the flag', () => {
  const { config } = loadConfig([], {});
  assert.equal(config.wakeOn, 'data');
  assert.equal(config.firstByteTimeoutMs, 30_000);
  const connect = loadConfig(['--wake-on', 'connect', '--first-byte-timeout', '1m'], {}).config;
  assert.deepEqual([connect.wakeOn, connect.firstByteTimeoutMs], ['connect', 60_000]);
  assert.equal(
    loadConfig(['--wake-on', 'connect'], { WAKE_ON: 'data', FIRST_BYTE_TIMEOUT: '5s' }).config.wakeOn,
    'data',
  );
  assert.throws(
    () => loadConfig([], { WAKE_ON: 'byte' }),
    (e: unknown) =>
      e instanceof ConfigError &&
      /"byte" for --wake-on \/ WAKE_ON \(from env\): must be one of data, connect/.test(e.message),
  );
  assert.throws(
    () => loadConfig(['--first-byte-timeout', '0s'], {}),
    (e: unknown) =>
      e instanceof ConfigError &&
      /"0s" for --first-byte-timeout \/ FIRST_BYTE_TIMEOUT \(from flag\): must be greater than 0/.test(e.message),
  );
});

test("every duration option takes 720h (past a Node timer's reach) and refuses more than Go's largest duration, naming flag and env var", () => {
  const durations = optionDefinitions.filter((definition) => definition.key.endsWith('Ms'));
  assert.ok(durations.length >= 9, 'every duration option is covered');
  for (const definition of durations) {
    // The leader election timings must keep their order, so only the lease duration is raised alone.
    if (definition.key === 'leaderElectionRenewDeadlineMs' || definition.key === 'leaderElectionRetryPeriodMs')
      continue;
    assert.equal(
      loadConfig([`--${definition.flag}`, '720h'], {}).config[definition.key],
      720 * 3_600_000,
      definition.flag,
    );
    assert.throws(
      () => loadConfig([], { [definition.env]: '2562048h' }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes(`"2562048h" for --${definition.flag} / ${definition.env} (from env): out of range`),
      definition.flag,
    );
  }
  const timings = loadConfig(
    [
      '--leader-election-lease-duration',
      '720h',
      '--leader-election-renew-deadline',
      '719h',
      '--leader-election-retry-period',
      '500h',
    ],
    {},
  ).config;
  assert.equal(timings.leaderElectionRetryPeriodMs, 500 * 3_600_000);
  assert.throws(
    () => loadConfig(['--leader-election-lease-duration', '600000h'], {}),
    (error: unknown) =>
      error instanceof ConfigError &&
      /"600000h0m0s" for --leader-election-lease-duration \/ LEADER_ELECTION_LEASE_DURATION .*int32/.test(
        error.message,
      ),
  );
});

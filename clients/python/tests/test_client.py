"""Tests the Python client against the real services on the local control plane.

The Go test in deploy/ (services_test.go) starts the control plane and the four
services, creates a namespace and a driver pod per application, and runs this
file with /usr/bin/python3 -m unittest, passing in the environment:

  SPARKPODS_ALLOCATOR, SPARKPODS_LIFECYCLE, SPARKPODS_PODMANAGER  gRPC addresses
  SPARKPODS_NAMESPACE, SPARKPODS_APP_ID, SPARKPODS_DRIVER_POD    the application
  SPARKPODS_TLS_CA_FILE      the CA bundle that signs the services' certificates
  SPARKPODS_TLS_CERT_FILE, SPARKPODS_TLS_KEY_FILE
                             an operator's client certificate, allowed everything
  SPARKPODS_PODMANAGER_TLS_CERT_FILE, SPARKPODS_PODMANAGER_TLS_KEY_FILE
                             an identity the pod manager trusts, to fail an executor
  SPARKPODS_TOKEN_FILE       a ServiceAccount token allowed on applications in
                             SPARKPODS_NAMESPACE only
"""

import os
import threading
import time
import unittest

import grpc

from sparkpods import SchedulerClient, channel, channel_credentials
from sparkpods.v1 import executor_pb2, lifecycle_pb2, pod_pb2, pod_pb2_grpc

ENV = {k: os.environ.get("SPARKPODS_" + k.upper(), "") for k in
       ("allocator", "lifecycle", "podmanager", "namespace", "app_id", "driver_pod", "tls_ca_file")}
TLS = {k: os.environ.get("SPARKPODS_" + k.upper(), "") for k in
       ("tls_cert_file", "tls_key_file", "podmanager_tls_cert_file", "podmanager_tls_key_file", "token_file")}
TIMEOUT = 90.0


def operator():
    """Credentials of the operator, whose certificate is in a group allowed
    everything on applications."""
    return channel_credentials(ENV["tls_ca_file"], cert_file=TLS["tls_cert_file"], key_file=TLS["tls_key_file"])


def eventually(what, check, timeout=TIMEOUT):
    """Polls check until it returns a truthy value, and returns it."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@unittest.skipUnless(all(ENV.values()), "run by deploy/services_test.go, which starts the services")
class LifeOfAnApplication(unittest.TestCase):
    """register -> scale -> an executor fails -> its event, resumed -> unregister."""

    def setUp(self):
        self.client = SchedulerClient(ENV["allocator"], ENV["lifecycle"], credentials=operator())
        self.addCleanup(self.client.close)
        self.client.wait_ready()
        self.ns, self.app_id = ENV["namespace"], ENV["app_id"]

    def running(self, app, n):
        execs = app.executors().executors
        up = [e for e in execs if e.state == executor_pb2.EXECUTOR_STATE_RUNNING]
        return len(up) >= n and up

    def test_life(self):
        app = self.client.register(self.ns, self.app_id, driver_pod_name=ENV["driver_pod"], spark_conf={
            "spark.app.id": self.app_id,
            "spark.kubernetes.namespace": self.ns,
            "spark.kubernetes.container.image": "spark:4.2.0",
            "spark.kubernetes.executor.podNamePrefix": self.app_id,
            "spark.kubernetes.driver.pod.name": ENV["driver_pod"],
            "spark.driver.host": self.app_id + "-driver-svc." + self.ns + ".svc",
            "spark.kubernetes.allocation.batch.delay": "200ms",
            "spark.executor.instances": "0",
        })

        # Scale up: two executors of the default profile run.
        profiles = app.set_targets(2)
        self.assertEqual([(p.resource_profile_id, p.target) for p in profiles], [(0, 2)])
        up = eventually("2 running executors", lambda: self.running(app, 2))
        victim = min(e.executor_id for e in up)

        # Follow events from the start, in the background.
        got, lock, first = [], threading.Lock(), threading.Event()
        stream = app.events(heartbeat_interval=0.5)
        self.addCleanup(stream.cancel)

        def follow():
            for ev in stream:
                with lock:
                    got.append(ev)
                first.set()
        follower = threading.Thread(target=follow, daemon=True)
        follower.start()

        # The executor's container exits with 137; kwok acts on the annotation.
        # PodService accepts only the identities the pod manager trusts.
        pods_channel = channel(ENV["podmanager"], channel_credentials(
            ENV["tls_ca_file"], cert_file=TLS["podmanager_tls_cert_file"], key_file=TLS["podmanager_tls_key_file"]))
        self.addCleanup(pods_channel.close)
        pods = pod_pb2_grpc.PodServiceStub(pods_channel)
        resp = pods.LabelExecutorPods(pod_pb2.LabelExecutorPodsRequest(
            namespace=self.ns, app_id=self.app_id, executor_ids=[victim],
            annotations={"sparkpods.io/exit-code": "137"}), timeout=30)
        self.assertEqual(resp.results[0].outcome, pod_pb2.POD_OUTCOME_LABELED, resp)

        self.assertTrue(first.wait(TIMEOUT), "no executor event")
        with lock:
            ev = got[0]
        self.assertEqual(ev.type, lifecycle_pb2.EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED)
        self.assertEqual(ev.executor_id, victim)
        self.assertEqual(ev.state, executor_pb2.EXECUTOR_STATE_FAILED)
        self.assertEqual(ev.exit.exit_code, 137)
        self.assertTrue(ev.exit.exit_caused_by_app)
        self.assertIn(f"The executor with id {victim} exited with exit code 137", ev.exit.message)
        self.assertEqual(stream.last_sequence, ev.sequence)
        stream.cancel()
        follower.join(10)
        self.assertFalse(follower.is_alive(), "cancel did not end the stream")

        # Resume: from 0 the same event comes again; after it, nothing older does.
        with app.events(0, heartbeat_interval=0.5) as again:
            self.assertEqual(next(iter(again)).sequence, ev.sequence)
        after = app.events(ev.sequence, heartbeat_interval=0.5)
        timer = threading.Timer(2.0, after.cancel)
        timer.start()
        for later in after:
            self.assertGreater(later.sequence, ev.sequence)
        timer.cancel()
        self.assertEqual(app.acknowledge(ev.sequence), ev.sequence)

        # The allocator replaces the failed executor to keep the target.
        eventually("a replacement executor", lambda: self.running(app, 2)
                   and all(e.executor_id != victim for e in self.running(app, 2)))

        # Unregister deletes the application's executor pods.
        self.assertGreaterEqual(app.unregister(), 2)
        with self.assertRaises(grpc.RpcError) as err:
            app.set_targets(1)
        self.assertEqual(err.exception.code(), grpc.StatusCode.NOT_FOUND)


@unittest.skipUnless(ENV["allocator"] and ENV["lifecycle"], "run by deploy/services_test.go")
class Errors(unittest.TestCase):
    def test_invalid_registration(self):
        with SchedulerClient(ENV["allocator"], ENV["lifecycle"], credentials=operator()) as client:
            with self.assertRaises(grpc.RpcError) as err:
                client.register("", "")
            self.assertEqual(err.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


@unittest.skipUnless(all(ENV.values()), "run by deploy/services_test.go")
class Authentication(unittest.TestCase):
    """Who may call: TLS alone is not an identity; a ServiceAccount token is
    one, authorized in its own namespace only."""

    def test_tls_without_a_client_certificate_or_token_is_unauthenticated(self):
        with SchedulerClient(ENV["allocator"], ENV["lifecycle"],
                             credentials=channel_credentials(ENV["tls_ca_file"])) as client:
            with self.assertRaises(grpc.RpcError) as err:
                client.application(ENV["namespace"], "spark-python-probe").executors()
            self.assertEqual(err.exception.code(), grpc.StatusCode.UNAUTHENTICATED, err.exception.details())
            self.assertIn("no credentials", err.exception.details())

    @unittest.skipUnless(TLS["token_file"], "needs SPARKPODS_TOKEN_FILE")
    def test_service_account_token(self):
        creds = channel_credentials(ENV["tls_ca_file"], token_file=TLS["token_file"])
        with SchedulerClient(ENV["allocator"], ENV["lifecycle"], credentials=creds) as client:
            # Authorized in its namespace: the allocator gets to say the
            # application is unknown.
            with self.assertRaises(grpc.RpcError) as err:
                client.application(ENV["namespace"], "spark-python-probe").executors()
            self.assertEqual(err.exception.code(), grpc.StatusCode.NOT_FOUND, err.exception.details())
            # Refused elsewhere, naming the namespace.
            with self.assertRaises(grpc.RpcError) as err:
                client.application("default", "spark-python-probe").executors()
            self.assertEqual(err.exception.code(), grpc.StatusCode.PERMISSION_DENIED, err.exception.details())
            self.assertIn('in namespace "default"', err.exception.details())


if __name__ == "__main__":
    unittest.main()

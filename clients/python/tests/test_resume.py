"""Tests EventStream's resume against an in-process LifecycleService that breaks
its streams: the real generated server and client, no services needed."""

import threading
import unittest
from concurrent import futures

import grpc

from sparkpods import SchedulerClient, channel_credentials
from sparkpods.v1 import lifecycle_pb2, lifecycle_pb2_grpc


class BreakingLifecycle(lifecycle_pb2_grpc.LifecycleServiceServicer):
    """Sends events 1 and 2 and fails with UNAVAILABLE; on the next call sends
    from the requested sequence again, one old event included, then 3."""

    def __init__(self):
        self.requests = []

    def WatchExecutorEvents(self, request, context):
        self.requests.append(request.after_sequence)
        if len(self.requests) == 1:
            for seq in (1, 2):
                yield _event(seq)
            context.abort(grpc.StatusCode.UNAVAILABLE, "lifecycle restarting")
        for seq in (request.after_sequence, request.after_sequence + 1):
            yield _event(seq)
        done = threading.Event()
        context.add_callback(done.set)
        done.wait(30)


def _event(seq):
    return lifecycle_pb2.WatchExecutorEventsResponse(event=lifecycle_pb2.ExecutorEvent(
        sequence=seq, namespace="ns", app_id="app", executor_id=seq,
        type=lifecycle_pb2.EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED))


class Resume(unittest.TestCase):
    def setUp(self):
        self.servicer = BreakingLifecycle()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        lifecycle_pb2_grpc.add_LifecycleServiceServicer_to_server(self.servicer, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.addCleanup(self.server.stop, None)
        self.client = SchedulerClient("127.0.0.1:1", f"127.0.0.1:{port}", insecure=True)
        self.addCleanup(self.client.close)

    def test_resumes_from_last_sequence_without_repeats(self):
        got = []
        with self.client.application("ns", "app").events() as stream:
            for ev in stream:
                got.append(ev.sequence)
                if len(got) == 3:
                    break
        self.assertEqual(got, [1, 2, 3])
        self.assertEqual(self.servicer.requests, [0, 2])
        self.assertEqual(stream.resumes, 1)
        self.assertEqual(stream.last_sequence, 3)

    def test_cancel_ends_a_blocked_iteration(self):
        stream = self.client.application("ns", "app").events(after_sequence=10)
        got = []
        t = threading.Thread(target=lambda: got.extend(ev.sequence for ev in stream))
        t.start()
        # The first call sends 1 and 2 (skipped: not after 10), then breaks;
        # the second sends 10 (skipped) and 11, then blocks.
        pause = threading.Event()  # never set: a sleep that reads as one
        for _ in range(200):
            if got:
                break
            pause.wait(0.05)
        stream.cancel()
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertEqual(got, [11])

    def test_non_resumable_errors_are_raised(self):
        for code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            with self.subTest(code=code):
                class Refusing(lifecycle_pb2_grpc.LifecycleServiceServicer):
                    def WatchExecutorEvents(self, request, context):
                        context.abort(code, "refused")
                server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
                lifecycle_pb2_grpc.add_LifecycleServiceServicer_to_server(Refusing(), server)
                port = server.add_insecure_port("127.0.0.1:0")
                server.start()
                self.addCleanup(server.stop, None)
                with SchedulerClient("127.0.0.1:1", f"127.0.0.1:{port}", insecure=True) as client:
                    with self.assertRaises(grpc.RpcError) as err:
                        list(client.application("ns", "app").events())
                    self.assertEqual(err.exception.code(), code)


class Transport(unittest.TestCase):
    def test_credentials_or_insecure_is_required(self):
        with self.assertRaisesRegex(ValueError, "channel_credentials"):
            SchedulerClient("127.0.0.1:1", "127.0.0.1:2")
        with self.assertRaisesRegex(ValueError, "exclude each other"):
            SchedulerClient("127.0.0.1:1", "127.0.0.1:2", credentials=grpc.ssl_channel_credentials(), insecure=True)

    def test_cert_and_key_go_together(self):
        with self.assertRaisesRegex(ValueError, "go together"):
            channel_credentials(__file__, cert_file=__file__)


if __name__ == "__main__":
    unittest.main()

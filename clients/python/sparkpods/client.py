"""A scheduler's client for sparkpods: the allocator's SchedulerService and the
lifecycle service's executor events."""

from __future__ import annotations

import random
import threading
import time
from typing import Iterator, Mapping, Optional, Union

import grpc
from google.protobuf import duration_pb2

from sparkpods.v1 import lifecycle_pb2, lifecycle_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc

# Keepalive for long-lived event streams: a dead connection is noticed in
# about 30 s instead of the kernel's TCP timeout.
_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
]

# Stream errors after which events resumes: the service restarted or the
# connection broke; nothing the caller must know about.
_RESUMABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.ABORTED,
})


# How long a token read from a file is used before the file is read again:
# Kubernetes rotates projected ServiceAccount tokens long before they expire.
_TOKEN_REREAD_SECONDS = 60.0


def channel_credentials(ca_file: str, *, cert_file: Optional[str] = None, key_file: Optional[str] = None,
                        token_file: Optional[str] = None) -> grpc.ChannelCredentials:
    """Returns credentials to reach the sparkpods services over TLS.

    ``ca_file`` is the PEM CA bundle that signs the services' certificates.
    The caller authenticates with a client certificate (``cert_file`` and
    ``key_file``, PEM; its common name is the identity, its organizations the
    groups) or with a Kubernetes ServiceAccount token (``token_file``, for
    example the pod's projected token
    ``/var/run/secrets/kubernetes.io/serviceaccount/token``), sent as
    ``authorization: Bearer <token>`` and re-read every minute. The services
    then authorize the identity with RBAC on ``applications.sparkpods.io`` in
    the request's namespace.

    The certificate files are read now: after rotating them, make a new
    client. Raises OSError when a file cannot be read and ValueError when
    only one of cert_file and key_file is given.
    """
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file go together")
    root = _read(ca_file)
    key = _read(key_file) if key_file else None
    chain = _read(cert_file) if cert_file else None
    creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)
    if token_file:
        token = grpc.metadata_call_credentials(_TokenFile(token_file), name="sparkpods-service-account-token")
        creds = grpc.composite_channel_credentials(creds, token)
    return creds


class SchedulerClient:
    """Connects a scheduler to the allocator (SchedulerService) and the
    lifecycle service (LifecycleService).

    Addresses are gRPC targets such as ``"sparkpods-allocator.sparkpods:50052"``.
    The services speak TLS: pass ``credentials`` from
    :func:`channel_credentials`, or ``insecure=True`` for services run with
    ``--insecure`` (plaintext, development only); one of the two is required.
    ``server_name`` is the name the services' certificates must carry when it
    is not the host of the address. ``timeout`` bounds each unary call, in
    seconds. Close the client (or use it as a context manager) when done.

    Refusals are ``grpc.RpcError`` with UNAUTHENTICATED (no or rejected
    credentials) or PERMISSION_DENIED (no RBAC grant); the event stream does
    not retry them.
    """

    def __init__(self, allocator: str, lifecycle: str, *,
                 credentials: Optional[grpc.ChannelCredentials] = None, insecure: bool = False,
                 server_name: Optional[str] = None, timeout: float = 30.0):
        if credentials is not None and insecure:
            raise ValueError("credentials and insecure=True exclude each other")
        if credentials is None and not insecure:
            raise ValueError("pass credentials=sparkpods.channel_credentials(ca_file, ...) to reach the services "
                             "over TLS, or insecure=True for services run with --insecure (development only)")
        self._channels = [channel(allocator, credentials, server_name=server_name),
                          channel(lifecycle, credentials, server_name=server_name)]
        self.scheduler = scheduler_pb2_grpc.SchedulerServiceStub(self._channels[0])
        self.lifecycle = lifecycle_pb2_grpc.LifecycleServiceStub(self._channels[1])
        self.timeout = timeout

    def register(self, namespace: str, app_id: str, *, driver_pod_name: str = "",
                 spark_conf: Optional[Mapping[str, str]] = None) -> "Application":
        """Registers an application with its Spark configuration (Spark's own
        keys and defaults) and returns a handle on it. Registering again with
        the same configuration is a no-op."""
        self.scheduler.RegisterApplication(scheduler_pb2.RegisterApplicationRequest(
            namespace=namespace, app_id=app_id, driver_pod_name=driver_pod_name,
            spark_conf=dict(spark_conf or {})), timeout=self.timeout)
        return Application(self, namespace, app_id)

    def application(self, namespace: str, app_id: str) -> "Application":
        """Returns a handle on an application registered earlier, for example
        by a previous run of the scheduler."""
        return Application(self, namespace, app_id)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Waits until both connections are up; raises grpc.FutureTimeoutError."""
        for ch in self._channels:
            grpc.channel_ready_future(ch).result(timeout=timeout)

    def close(self) -> None:
        for ch in self._channels:
            ch.close()

    def __enter__(self) -> "SchedulerClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Application:
    """One registered application: targets, executors and events."""

    def __init__(self, client: SchedulerClient, namespace: str, app_id: str):
        self._client = client
        self.namespace = namespace
        self.app_id = app_id

    def set_targets(self, targets: Union[int, Mapping[int, int]]) -> list:
        """Sets the total number of executors wanted per resource profile id
        (Spark's requestTotalExecutors); an int sets the default profile 0.
        Profiles left out keep their target. Returns the allocation state per
        profile (scheduler_pb2.ProfileAllocation)."""
        if isinstance(targets, int):
            targets = {0: targets}
        resp = self._client.scheduler.SetExecutorTargets(scheduler_pb2.SetExecutorTargetsRequest(
            namespace=self.namespace, app_id=self.app_id,
            targets=[scheduler_pb2.ExecutorTarget(resource_profile_id=rp, total_executors=n)
                     for rp, n in sorted(targets.items())]), timeout=self._client.timeout)
        return list(resp.profiles)

    def executors(self) -> scheduler_pb2.ListExecutorsResponse:
        """Returns the application's executors as the allocator sees them."""
        return self._client.scheduler.ListExecutors(scheduler_pb2.ListExecutorsRequest(
            namespace=self.namespace, app_id=self.app_id), timeout=self._client.timeout)

    def kill(self, executor_ids) -> list:
        """Kills executors (deletes their pods); returns the ids accepted."""
        resp = self._client.scheduler.KillExecutors(scheduler_pb2.KillExecutorsRequest(
            namespace=self.namespace, app_id=self.app_id, executor_ids=list(executor_ids)),
            timeout=self._client.timeout)
        return list(resp.accepted_executor_ids)

    def unregister(self) -> int:
        """Stops managing the application and, unless
        spark.kubernetes.executor.deleteOnTermination is false, deletes its
        executor pods; returns how many pod deletions were requested."""
        resp = self._client.scheduler.UnregisterApplication(scheduler_pb2.UnregisterApplicationRequest(
            namespace=self.namespace, app_id=self.app_id), timeout=self._client.timeout)
        return resp.deleted_pods

    def acknowledge(self, sequence: int) -> int:
        """Tells the lifecycle service that every event up to sequence is
        handled, so it may forget them; returns the acknowledged sequence."""
        resp = self._client.lifecycle.AcknowledgeExecutorEvents(lifecycle_pb2.AcknowledgeExecutorEventsRequest(
            namespace=self.namespace, app_id=self.app_id, sequence=sequence), timeout=self._client.timeout)
        return resp.acknowledged_sequence

    def events(self, after_sequence: int = 0, *, heartbeat_interval: float = 10.0,
               max_backoff: float = 10.0) -> "EventStream":
        """Follows the application's executor events with a sequence greater
        than after_sequence (0: every event still recorded).

        The stream resumes by itself after the lifecycle service restarts or
        the connection breaks, from the last sequence it yielded, and never
        yields a sequence twice. Persist ``last_sequence`` (or acknowledge) to
        resume across restarts of the scheduler itself."""
        return EventStream(self._client.lifecycle, lifecycle_pb2.WatchExecutorEventsRequest(
            namespace=self.namespace, app_id=self.app_id, after_sequence=after_sequence,
            heartbeat_interval=_duration(heartbeat_interval)), max_backoff)


class EventStream:
    """An iterator of lifecycle_pb2.ExecutorEvent that resumes after failures.

    Iterate it from one thread; ``cancel`` (or leaving a ``with`` block) ends
    the iteration from any thread.
    """

    def __init__(self, stub, request, max_backoff: float):
        self._stub = stub
        self._request = request
        self._max_backoff = max_backoff
        self._lock = threading.Lock()
        self._call = None
        self._cancelled = threading.Event()
        self.last_sequence = request.after_sequence
        self.resumes = 0

    def __iter__(self) -> Iterator[lifecycle_pb2.ExecutorEvent]:
        backoff = 0.1
        while not self._cancelled.is_set():
            req = lifecycle_pb2.WatchExecutorEventsRequest()
            req.CopyFrom(self._request)
            req.after_sequence = self.last_sequence
            with self._lock:
                if self._cancelled.is_set():
                    return
                self._call = self._stub.WatchExecutorEvents(req)
            try:
                for msg in self._call:
                    backoff = 0.1  # a message arrived: the stream is healthy
                    if msg.WhichOneof("message") != "event":
                        continue
                    ev = msg.event
                    if ev.sequence <= self.last_sequence:
                        continue  # already yielded before a resume
                    self.last_sequence = ev.sequence
                    yield ev
            except grpc.RpcError as e:
                if self._cancelled.is_set():
                    return
                if e.code() not in _RESUMABLE:
                    raise
            if self._cancelled.wait(backoff * random.uniform(0.5, 1.0)):
                return
            backoff = min(backoff * 2, self._max_backoff)
            self.resumes += 1

    def cancel(self) -> None:
        """Ends the stream; a blocked iteration returns."""
        with self._lock:
            self._cancelled.set()
            if self._call is not None:
                self._call.cancel()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()


def channel(target: str, credentials: Optional[grpc.ChannelCredentials], *,
            server_name: Optional[str] = None) -> grpc.Channel:
    """Returns a channel to one sparkpods service with the client's keepalive:
    over TLS with credentials (see :func:`channel_credentials`), or in
    plaintext when credentials is None. For the stubs this package does not
    wrap."""
    if credentials is None:
        return grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
    options = list(_CHANNEL_OPTIONS)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target, credentials, options=options)


class _TokenFile(grpc.AuthMetadataPlugin):
    """Sends the token in a file as a bearer token, re-reading the file every
    minute so that a rotated ServiceAccount token is picked up. gRPC sends
    call credentials over TLS only."""

    def __init__(self, path: str):
        self._path = path
        self._lock = threading.Lock()
        self._token = ""
        self._read_at = 0.0

    def __call__(self, context, callback):
        try:
            callback((("authorization", "Bearer " + self._current()),), None)
        except Exception as e:  # handed to gRPC, which fails the call with it
            callback(None, e)

    def _current(self) -> str:
        with self._lock:
            if self._token and time.monotonic() - self._read_at < _TOKEN_REREAD_SECONDS:
                return self._token
            with open(self._path, encoding="utf-8") as f:
                token = f.read().strip()
            if not token:
                raise ValueError(f"token file {self._path} is empty")
            self._token, self._read_at = token, time.monotonic()
            return token


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d

"""Python client for sparkpods, Spark's Kubernetes executor management as gRPC services.

The generated protobuf and gRPC modules are ``sparkpods.v1.*_pb2`` and
``sparkpods.v1.*_pb2_grpc`` (run ``generate.sh``, or ``make clients-python``).
This package adds a small client for a scheduler: register an application,
set its executor targets, and follow its executor events with resume. The
services speak TLS and authenticate the caller by its client certificate or
its Kubernetes ServiceAccount token::

    from sparkpods import SchedulerClient, channel_credentials

    creds = channel_credentials("/etc/sparkpods/ca.crt",
                                token_file="/var/run/secrets/kubernetes.io/serviceaccount/token")
    with SchedulerClient("allocator:50052", "lifecycle:50053", credentials=creds) as client:
        app = client.register("spark", "spark-1234", driver_pod_name="driver",
                              spark_conf={"spark.kubernetes.container.image": "spark:4.2.0"})
        app.set_targets({0: 4})
        with app.events() as events:
            for event in events:
                print(event.executor_id, event.exit.message)
                app.acknowledge(event.sequence)

Errors are the ``grpc.RpcError`` the services return, with their status codes
(UNAUTHENTICATED and PERMISSION_DENIED for refused callers).
"""

from sparkpods.client import Application, EventStream, SchedulerClient, channel, channel_credentials

__all__ = ["Application", "EventStream", "SchedulerClient", "channel", "channel_credentials"]

"""Python client for sparkpods, Spark's Kubernetes executor management as gRPC services.

The generated protobuf and gRPC modules are ``sparkpods.v1.*_pb2`` and
``sparkpods.v1.*_pb2_grpc`` (run ``generate.sh``, or ``make clients-python``).
This package adds a small client for a scheduler: register an application,
set its executor targets, and follow its executor events with resume::

    from sparkpods import SchedulerClient

    with SchedulerClient("allocator:50052", "lifecycle:50053") as client:
        app = client.register("spark", "spark-1234", driver_pod_name="driver",
                              spark_conf={"spark.kubernetes.container.image": "spark:4.2.0"})
        app.set_targets({0: 4})
        with app.events() as events:
            for event in events:
                print(event.executor_id, event.exit.message)
                app.acknowledge(event.sequence)

Errors are the ``grpc.RpcError`` the services return, with their status codes.
"""

from sparkpods.client import Application, EventStream, SchedulerClient

__all__ = ["Application", "EventStream", "SchedulerClient"]

"""The request path: an Ollama-compatible proxy in front of the servers (DESIGN.md).

- :mod:`~n3d.proxy.server`: the listener (:class:`Proxy`), ``/metrics``, drain;
- :mod:`~n3d.proxy.forward`: one request, forwarded, held, retried, its errors;
- :mod:`~n3d.proxy.view`: a server as the proxy sees it (:class:`ServerView`);
- :mod:`~n3d.proxy.gate`: when a request may go to a server (the policy, drain);
- :mod:`~n3d.proxy.pick` and :mod:`~n3d.proxy.router`: which server takes it
  (the routing policy), and the wait for one;
- :mod:`~n3d.proxy.merge`: ``/api/tags``, ``/api/ps``, ``/v1/models`` of every
  server, merged; :mod:`~n3d.proxy.replies`: the answers the proxy makes itself;
- :mod:`~n3d.proxy.bodies` and :mod:`~n3d.proxy.routes`: request bodies, headers,
  route templates;
- :mod:`~n3d.proxy.meter`: chunks, TTFT and tokens read from the forwarded bytes;
- :mod:`~n3d.proxy.records`: the requests in flight, the ``request`` event, metrics;
- :mod:`~n3d.proxy.exposition`: n3d's metrics as Prometheus text.

It never imports the supervisor, the model service or the API: the daemon passes
it one narrow view per server (docs/proxy.md). Nothing is imported here: aiohttp and
prometheus_client cost ~20 MiB of memory, paid only by a daemon whose proxy is on
(or that renders Prometheus text), never by n3d's idle footprint or by n3ctl.
"""

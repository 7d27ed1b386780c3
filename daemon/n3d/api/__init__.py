"""What the control socket offers: the methods of DESIGN.md's table and their description.

- :mod:`~n3d.api.methods`: the method table (``status``, ``health``, ``server.*``,
  ``config.*``, ``events.*``, ``metrics``, ``capabilities``, ``rpc.discover``);
- :mod:`~n3d.api.models`: ``models.*`` and ``warm.*``;
- :mod:`~n3d.api.shapes`: each result's JSON as a TypedDict, built from the domain's
  typed values by the two modules above;
- :mod:`~n3d.api.faults`: the one error→code table, exception class → code and ``data``;
- :mod:`~n3d.api.openrpc`: the OpenRPC document ``rpc.discover`` answers.

The transport that carries them is :mod:`n3d.rpc`.
"""

"""n3d's own place in the service manager: how n3d itself runs as a service.

- :mod:`~n3d.service.units`: the systemd user unit (and socket) and the launchd agent,
  rendered from :mod:`n3d.service.templates`, installed and removed
  (`n3d service install|uninstall|print`);
- :mod:`~n3d.service.notify`: sd_notify (``READY=1``, ``STATUS=``, the watchdog), so
  systemd knows when n3d is ready and whether it still runs.
"""

"""The operator console: live transitions, calls and their timelines, dead letters, health, in the browser.

Served by the receiver itself at ``/console`` (`receiver.console.routes`), behind the console token
(`receiver.console.access`). Server-rendered HTML (templates/) with one stylesheet and one small script
(static/), both shipped in the package: nothing is fetched from anywhere else.
"""

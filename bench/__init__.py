"""ward-bench: the load generator that measures Ward against etcd in the same run.

Modules: ``main`` (command line), ``config`` (what a run does and how it is split over client
processes), ``runner`` (one run), ``compare`` (etcd vs Ward rounds), ``servers`` (starting and
stopping them), ``worker``/``closed_loop``/``watching`` (the client processes), ``wire``
(pre-serialized requests), ``rss`` (server memory), ``stats`` and ``report``.
"""

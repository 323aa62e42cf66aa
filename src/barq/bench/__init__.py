"""`barq bench` and `barq sim` machinery: oracles, metrics, sessions, reports.

``oracle`` (max-flow feasibility and min-cost fee with the true liquidity),
``metrics`` (per-payment records, rounds, percentiles), ``runner`` (bench
sessions through the real engine on the simulated network), ``sim`` (the
live simulator), ``report`` (table, JSON, plot).
"""

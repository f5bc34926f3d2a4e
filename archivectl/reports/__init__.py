"""Reports for people and cron: completeness, retention, statistics, catalogue (P5, P11, P13, P15, P18).

They read only the clear parts of records, so they need no key and print no personal data.
"""

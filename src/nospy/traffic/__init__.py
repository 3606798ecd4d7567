"""Traffic evidence: captures and flow logs to flows, DNS names, countries and egress findings.

`read.read_capture` picks the reader by content; `aggregate.aggregate` groups egress by destination
and country; `rules.TrafficSource` is the evidence plug-in for ``nospy check``; `geo.Geolocator` is the
geolocation interface the firmware checks share.
"""

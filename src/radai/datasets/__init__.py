"""Datasets: versioned reference datasets of archived studies with study-level labels.

A dataset has numbered versions. A *draft* version collects studies (by query, by a
list of Study Instance UIDs, or by importing labelled files) and labels; freezing it
writes its manifest — the SHA-256 of every instance, the labels and the dataset card —
and from then on the version cannot change: the service refuses, and database triggers
refuse any write to a frozen version's rows. New data goes into the next version, a
draft that starts as a copy of the latest one. See ``docs/datasets.md``.
"""

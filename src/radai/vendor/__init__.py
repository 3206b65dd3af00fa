"""De-identified access for outside model vendors.

Vendors (role ``vendor``, capability ``vendor_view``; admins hold it too) read the
archive through ``/vendor/dicom-web``, a DICOMweb service (PS3.18 QIDO-RS and WADO-RS)
that sends only data de-identified by the PS3.15 Annex E Basic Profile (options from
``vendor.options``) under the configured keyed pseudonyms:

- Which studies: only those an administrator granted to the vendor account
  (``/api/v1/vendor/grants``: a list of studies, or the studies of a dataset version).
  A study that is not granted is answered like one that does not exist (404), and is
  never listed. Revoking a grant takes effect at the next request. Administrators hold
  ``vendor_view`` too and see the view through their own grants (to check what a vendor
  would see).
- What they see: pseudonymous UIDs, Patient ID replaced by a keyed pseudonym, Patient's
  Name emptied, dates shifted per patient, descriptions cleaned, as the profile says;
  pixel data exactly as stored. Objects that may carry burned-in text are withheld (403
  with the reason, or left out of a study with a Warning).
- Requests name objects by their pseudonymous UIDs, resolved through a map the view
  fills when it issues them (``vendor_uid_map``, never shown to vendors).
- Every request is audited (actions ``vendor.*``) with the original Study Instance UIDs.
- The key is ``deid.key_file`` or ``deid.key``; without one the view answers 503 and
  says which setting to give, and an unusable key stops ``radai serve`` at start-up.
"""

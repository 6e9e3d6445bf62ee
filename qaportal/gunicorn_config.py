"""gunicorn settings of the servers this project starts (`-c python:qaportal.gunicorn_config`:
scripts/serve.sh, the several-servers test; docs/deployment.md tells operators to use it).

The access log names the method, the path, the status, the size, the time taken and the
user agent: never the query string nor the referrer. DICOMweb searches carry patient names
and IDs in their query string (QIDO-RS `PatientName=`, `PatientID=`; OHIF asks for a
patient's other studies by `00100020=<PatientID>`), and the pages' referrers carry their
filters: no patient data goes into a log.
"""

# gunicorn's default is '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"':
# %(r)s is the request line with its query string, %(f)s the referrer. %(U)s is the path
# alone.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s"'

"""ModelService to Kubernetes objects (Deployment, Service, HPA, DestinationRule,
VirtualService, CronJob, ...): pure functions.
"""

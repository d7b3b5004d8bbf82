"""kubesvc.node"""

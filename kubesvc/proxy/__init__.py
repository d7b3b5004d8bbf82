"""kubesvc.proxy"""

package fr.vtdui.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.interceptor.api.IInterceptorService;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.binary.api.IBinaryStorageSvc;
import ca.uhn.fhir.jpa.binstore.DatabaseBinaryContentStorageSvcImpl;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.provider.IJpaSystemProvider;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.provider.SubscriptionTriggeringProvider;
import ca.uhn.fhir.jpa.provider.ValueSetOperationProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.subscription.match.deliver.email.IEmailSender;
import ca.uhn.fhir.narrative2.NullNarrativeGenerator;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.interceptor.LoggingInterceptor;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import jakarta.persistence.EntityManagerFactory;
import java.util.Properties;
import javax.sql.DataSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Lazy;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.transaction.annotation.EnableTransactionManagement;

/** The beans HAPI's JPA configuration expects the application to provide, and the REST servlet. */
@Configuration
@EnableTransactionManagement
@EnableConfigurationProperties(LauncherProperties.class)
public class ServerConfig {

	private static final Logger LOG = LoggerFactory.getLogger(ServerConfig.class);

	@Bean
	public JpaStorageSettings storageSettings(LauncherProperties props) {
		JpaStorageSettings settings = new JpaStorageSettings();
		// null switches reuse of cached searches off entirely: a search right after a write sees it.
		long reuse = props.getReuseCachedSearchResultsMillis();
		settings.setReuseCachedSearchResultsForMillis(reuse > 0 ? reuse : null);
		settings.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.valueOf(props.getClientIdStrategy()));
		if (settings.getResourceClientIdStrategy() == JpaStorageSettings.ClientIdStrategyEnum.ANY) {
			// With ANY, server-assigned numeric ids could collide with client ids: HAPI requires UUIDs then.
			settings.setResourceServerIdStrategy(JpaStorageSettings.IdStrategyEnum.UUID);
		}
		settings.setAllowMultipleDelete(props.isAllowMultipleDelete());
		settings.setEnforceReferentialIntegrityOnWrite(props.isEnforceReferentialIntegrityOnWrite());
		settings.setFetchSizeDefaultMaximum(props.getMaxPageSize());
		// Hibernate Search (Lucene/Elasticsearch) is not configured: keep full-text indexing off.
		settings.setHibernateSearchIndexSearchParams(false);
		settings.setAdvancedHSearchIndexing(false);
		LOG.info(
				"vtdui HAPI launcher: resthook={}, searchCacheMillis={}, clientIds={}",
				props.isResthookEnabled(),
				settings.getReuseCachedSearchResultsForMillis(),
				settings.getResourceClientIdStrategy());
		return settings;
	}

	@Bean
	public SubscriptionSettings subscriptionSettings(LauncherProperties props) {
		SubscriptionSettings settings = new SubscriptionSettings();
		if (props.isResthookEnabled()) {
			// Subscriptions whose channel type is not in this set stay "requested" and never deliver.
			settings.addSupportedSubscriptionType(
					org.hl7.fhir.dstu2.model.Subscription.SubscriptionChannelType.RESTHOOK);
		}
		return settings;
	}

	/**
	 * Static: a BeanPostProcessor must exist before the beans it processes, so it cannot wait for the
	 * configuration-properties binding; the interval is read from the environment directly.
	 */
	@Bean
	public static SubscriptionSchedule subscriptionSchedule(
			@Value("${vtdui.hapi.subscription-submit-interval-millis:250}") long intervalMillis) {
		return new SubscriptionSchedule(intervalMillis);
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings();
	}

	@Primary
	@Bean
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			DataSource dataSource,
			ConfigurableListableBeanFactory beanFactory,
			FhirContext fhirContext,
			JpaStorageSettings storageSettings,
			@Value("${spring.datasource.url:}") String jdbcUrl) {
		Database database = Database.of(jdbcUrl);
		// Fail now, with the driver's reason, rather than with Hibernate's or HAPI's follow-up errors.
		Database.check(dataSource, jdbcUrl);
		LOG.info("vtdui HAPI launcher: database {} ({})", database, Database.describe(jdbcUrl));
		LocalContainerEntityManagerFactoryBean emf =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
		emf.setPersistenceUnitName("HAPI_PU");
		emf.setDataSource(dataSource);
		Properties jpa = new Properties();
		jpa.put("hibernate.dialect", database.dialect());
		// Creates the HAPI schema on first start and keeps an existing database (H2 file, PostgreSQL) on later
		// starts, adding what a newer HAPI needs, as HAPI's own starter does.
		jpa.put("hibernate.hbm2ddl.auto", "update");
		jpa.put("hibernate.search.enabled", "false");
		jpa.put("hibernate.format_sql", "false");
		// PostgreSQL answers schema updates with notices ("constraint ... does not exist, skipping"): not errors.
		jpa.put("hibernate.jdbc.log.warnings", "false");
		jpa.put("hibernate.show_sql", "false");
		jpa.put("hibernate.jdbc.batch_size", "20");
		jpa.put("hibernate.cache.use_query_cache", "false");
		jpa.put("hibernate.cache.use_second_level_cache", "false");
		jpa.put("hibernate.cache.use_structured_entries", "false");
		jpa.put("hibernate.cache.use_minimal_puts", "false");
		emf.setJpaProperties(jpa);
		return emf;
	}

	@Primary
	@Bean
	public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
		JpaTransactionManager tm = new JpaTransactionManager();
		tm.setEntityManagerFactory(entityManagerFactory);
		return tm;
	}

	/** Email subscriptions are not enabled, but the delivery handler factory needs a sender bean. */
	@Bean
	public IEmailSender emailSender() {
		return details -> LOG.warn("Email subscriptions are not supported by this server; message dropped");
	}

	/** Registered on the storage layer, so that it also sees writes made inside transactions. */
	@Bean
	public ConformanceCacheInvalidator conformanceCacheInvalidator(
			IInterceptorService interceptors, IValidationSupport validationSupport) {
		ConformanceCacheInvalidator invalidator = new ConformanceCacheInvalidator(validationSupport);
		interceptors.registerInterceptor(invalidator);
		return invalidator;
	}

	@Lazy
	@Bean
	public IBinaryStorageSvc binaryStorageSvc() {
		return new DatabaseBinaryContentStorageSvcImpl();
	}

	@Bean
	public RestfulServer restfulServer(
			IFhirSystemDao<?, ?> systemDao,
			ResourceProviderFactory resourceProviders,
			IJpaSystemProvider systemProvider,
			JpaStorageSettings storageSettings,
			ISearchParamRegistry searchParamRegistry,
			IValidationSupport validationSupport,
			DatabaseBackedPagingProvider pagingProvider,
			SubscriptionTriggeringProvider subscriptionTriggeringProvider,
			ValueSetOperationProvider valueSetOperationProvider,
			LauncherProperties props) {
		FhirContext ctx = systemDao.getContext();
		ctx.setNarrativeGenerator(new NullNarrativeGenerator());
		RestfulServer server = new RestfulServer(ctx);
		server.registerProviders(resourceProviders.createProviders());
		server.registerProvider(systemProvider);
		server.registerProvider(subscriptionTriggeringProvider);
		server.registerProvider(valueSetOperationProvider);
		JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
				server, systemDao, storageSettings, searchParamRegistry, validationSupport);
		capabilities.setImplementationDescription("vtdui HAPI FHIR R4 server");
		server.setServerConformanceProvider(capabilities);
		pagingProvider.setDefaultPageSize(props.getDefaultPageSize());
		pagingProvider.setMaximumPageSize(props.getMaxPageSize());
		server.setPagingProvider(pagingProvider);
		server.setServerAddressStrategy(new IncomingRequestAddressStrategy());
		LoggingInterceptor access = new LoggingInterceptor();
		access.setLoggerName("fhir.access");
		access.setMessageFormat("${operationType} ${idOrResourceName} ${requestVerb} ${requestUrl} -> ${processingTimeMillis} ms");
		access.setErrorMessageFormat("ERROR ${requestVerb} ${requestUrl}: ${exceptionMessage}");
		access.setLogExceptions(true);
		server.registerInterceptor(access);
		return server;
	}

	@Bean
	public ServletRegistrationBean<RestfulServer> fhirServlet(RestfulServer server) {
		ServletRegistrationBean<RestfulServer> registration = new ServletRegistrationBean<>(server, "/fhir/*");
		registration.setName("fhir");
		registration.setLoadOnStartup(1);
		return registration;
	}
}
